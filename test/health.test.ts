import t from 'tap'
import { build } from './helper.js'

t.test('liveness and readiness', async t => {
  const app = await build(t)
  const live = await app.inject({ method: 'GET', url: '/health' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { success: true, data: { status: 'ok' } })

  for (const url of ['/health/ready', '/api/v1/health']) {
    const ready = await app.inject({ method: 'GET', url })
    t.equal(ready.statusCode, 200, url)
    const checks = process.env.REDIS_URL ? { database: 'ok', redis: 'ok' } : { database: 'ok' }
    t.same(ready.json(), { success: true, data: { status: 'ok', checks } }, url)
  }
})

t.test('readiness is 503 with the failing check named when the database is gone', async t => {
  const app = await build(t)
  app.database.ping = async () => { throw new Error('connection refused') }
  const res = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(res.statusCode, 503)
  const body = res.json()
  t.equal(body.success, false)
  t.equal(body.error.code, 'SERVICE_UNAVAILABLE')
  t.same(body.error.details, [{ field: 'database', message: 'database is not reachable' }])
  t.equal(body.error.requestId, res.headers['x-request-id'])
  t.equal(res.headers['retry-after'], '5', 'with Retry-After, as every 503')
})

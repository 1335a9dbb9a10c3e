import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build, testConfig } from './helper.js'

t.test('GET /metrics: Prometheus text with process defaults and request durations by route template', async t => {
  const app = await build(t)
  await app.inject({ method: 'GET', url: `/api/v1/users/${randomUUID()}` })
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: `/no/such/${randomUUID()}` })

  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /^process_cpu_user_seconds_total \d/m, 'default process metrics')
  t.match(res.body, /^nodejs_eventloop_lag_seconds /m, 'default Node.js metrics')
  t.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m)
  t.match(res.body, /^http_request_duration_seconds_count\{route="\/api\/v1\/users\/:id",method="GET",status_code="401"\} 1$/m, 'labelled by route template')
  t.match(res.body, /^http_request_duration_seconds_bucket\{le="0\.005",route="\/health",method="GET",status_code="200"\} \d+$/m)
  t.match(res.body, /route="unmatched",method="GET",status_code="404"/, 'unknown URLs share one label')
  t.notMatch(res.body, /\/no\/such\//, 'raw URLs never become labels')
})

t.test('/metrics is not part of the OpenAPI document', async t => {
  const app = await build(t)
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.ok(doc.paths['/api/v1/roles'], 'the document lists the API')
  t.notOk(doc.paths['/metrics'])
})

t.test('/metrics on the API port answers only the addresses in METRICS_ALLOW (default loopback)', async t => {
  const app = await build(t)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 200, 'loopback')
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '::1' })).statusCode, 200, 'IPv6 loopback')
  const outside = await app.inject({ url: '/metrics', remoteAddress: '203.0.113.9', headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(outside.statusCode, 403, 'another address, whatever X-Forwarded-For says')
  t.equal(outside.json().error.code, 'FORBIDDEN')

  const listed = await build(t, { metricsAllow: ['10.0.0.0/8'] })
  t.equal((await listed.inject({ url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode, 200, 'a listed network')
  t.equal((await listed.inject({ url: '/metrics' })).statusCode, 403, 'loopback is no longer listed')
  t.throws(() => testConfig({}, { METRICS_ALLOW: 'not-an-address' }), /METRICS_ALLOW/, 'a bad entry stops the start')
})

t.test('with METRICS_PORT /metrics is served there, and not on the API port', async t => {
  const app = await build(t, { metricsPort: 0 })
  const address = app.metricsAddress()
  t.ok(address?.port, 'listening once ready')
  const res = await fetch(`http://127.0.0.1:${address!.port}/metrics`)
  t.equal(res.status, 200)
  t.match(await res.text(), /^process_cpu_user_seconds_total \d/m)
  t.equal((await fetch(`http://127.0.0.1:${address!.port}/other`)).status, 404)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 404, 'not on the API port')
})

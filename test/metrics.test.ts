import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build } from './helper.js'

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

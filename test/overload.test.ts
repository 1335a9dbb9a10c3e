import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { assertError, build } from './helper.js'

t.test('over MAX_HEAP_USED_BYTES requests are 503 with Retry-After in the envelope; liveness still answers', async t => {
  // Any heap is over one byte: from the first sample (once a second) the process is under pressure.
  const app = await build(t, { maxHeapUsedBytes: 1 })
  await sleep(1300)
  const res = await app.inject({ url: '/api/v1/users/00000000-0000-4000-8000-000000000000' })
  assertError(t, res, 503, 'SERVICE_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '5', 'Retry-After')
  t.ok(res.headers['x-ratelimit-limit'], 'counted by the rate limit first')
  assertError(t, await app.inject({ url: '/health/ready' }), 503, 'SERVICE_UNAVAILABLE', 'readiness: out of rotation')
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness answers')
})

t.test('with both limits at 0 nothing is shed', async t => {
  const app = await build(t, { maxHeapUsedBytes: 0, maxEventLoopDelayMs: 0 })
  t.notOk(app.hasPlugin('@fastify/under-pressure'), 'under-pressure not registered')
})

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

t.test('over MAX_EVENT_LOOP_DELAY requests are 503 with Retry-After, and served again once the loop is free', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 200, maxHeapUsedBytes: 0 })
  const url = '/api/v1/users/00000000-0000-4000-8000-000000000000'
  // 401 (no token) is served; 503 is shed. The app's own start can delay the loop: wait it out.
  const servedWithin = async (tries: number) => {
    let status = 503
    for (let i = 0; i < tries && status === 503; i++) {
      await sleep(100)
      status = (await app.inject({ url })).statusCode
    }
    return status
  }
  t.equal(await servedWithin(50), 401, 'served before')
  // Three seconds of 400 ms blocks with short breaks (a busy process); under-pressure samples the
  // delay once a second, so some requests between the blocks meet the limit.
  let res
  const end = Date.now() + 3000
  while (Date.now() < end && res?.statusCode !== 503) {
    const until = Date.now() + 400
    while (Date.now() < until) { /* the event loop is blocked */ }
    await sleep(5)
    res = await app.inject({ url })
  }
  assertError(t, res!, 503, 'SERVICE_UNAVAILABLE')
  t.equal(res!.headers['retry-after'], '5', 'Retry-After')
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness answers')
  t.equal(await servedWithin(50), 401, 'served again once the delay is gone')
})

t.test('with both limits at 0 nothing is shed', async t => {
  const app = await build(t, { maxHeapUsedBytes: 0, maxEventLoopDelayMs: 0 })
  t.notOk(app.hasPlugin('@fastify/under-pressure'), 'under-pressure not registered')
})

import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { testConfig } from './helper.js'

async function linesAt (t: Test, level: string) {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean).map(line => JSON.parse(line))); done() } })
  const app = await buildApp(testConfig(), { logger: { level, stream } })
  t.teardown(() => app.close())
  await app.inject({ method: 'GET', url: '/api/v1/users/00000000-0000-4000-8000-000000000000' })
  return lines
}

t.test('at info, one line per request, after the answer', async t => {
  const lines = await linesAt(t, 'info')
  const requests = lines.filter(line => line.req)
  t.equal(requests.length, 1)
  t.match(requests[0], { msg: 'request completed', req: { method: 'GET', url: '/api/v1/users/00000000-0000-4000-8000-000000000000' }, res: { statusCode: 401 }, responseTime: Number })
})

t.test('at debug, the incoming line too', async t => {
  const lines = await linesAt(t, 'debug')
  t.same(lines.filter(line => line.req).map(line => line.msg), ['incoming request', 'request completed'])
})

t.test('at warn, no request lines', async t => {
  const lines = await linesAt(t, 'warn')
  t.same(lines.filter(line => line.req), [])
})

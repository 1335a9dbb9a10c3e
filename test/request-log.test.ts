import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { lazyChildLoggerFactory } from '../src/lib/request-logger.js'
import { testConfig, validateResponses } from './helper.js'

async function linesAt (t: Test, level: string) {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean).map(line => JSON.parse(line))); done() } })
  const app = await buildApp(testConfig(), { logger: { level, stream } })
  t.teardown(() => app.close())
  await app.ready()
  validateResponses(app)
  const response = await app.inject({ method: 'GET', url: '/api/v1/users/00000000-0000-4000-8000-000000000000' })
  t.ok(lines.filter(line => line.req).every(line => line.reqId === response.headers['x-request-id']), 'request lines carry the request id')
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

t.test('a request logger becomes a pino child only when a line passes its level', async t => {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const parent = pino({ level: 'warn' }, stream)
  let children = 0
  // Counted on the parent only: children inherit this method, and must call pino's own with themselves as this.
  const child = parent.child
  parent.child = function (this: typeof parent, ...args: Parameters<typeof child>) {
    if (this === parent) children++
    return child.apply(this, args)
  } as typeof parent.child

  const log = lazyChildLoggerFactory(parent, { reqId: 'r1' }, {})
  log.info('not at warn')
  log.debug('nor this')
  t.equal(children, 0, 'nothing logged, no child made')
  log.warn('first')
  log.error({ code: 'E' }, 'second')
  t.equal(children, 1, 'one child, made once')
  t.match(lines, [{ msg: 'first', reqId: 'r1', level: 40 }, { msg: 'second', code: 'E', reqId: 'r1', level: 50 }])

  const quiet = lazyChildLoggerFactory(parent, { reqId: 'r2' }, { level: 'error' })
  quiet.warn('below the route level')
  t.equal(quiet.level, 'error')
  quiet.level = 'info'
  quiet.info('after lowering')
  t.match(lines.at(-1), { msg: 'after lowering', reqId: 'r2' })
  t.equal(lines.length, 3, 'the warn under level error was dropped')
  quiet.child({ job: 'j' }).info('from a child')
  t.match(lines.at(-1), { msg: 'from a child', job: 'j', reqId: 'r2' }, 'its own children inherit the bindings')
})

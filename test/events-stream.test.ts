// The real-time event streams (GET /api/v1/events over SSE, /api/v1/events/ws over WebSocket) on a
// listening app over real HTTP, in whichever database mode the suite runs.
import { randomUUID } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import t from 'tap'
import { WebSocket } from 'ws'
import { Writable } from 'node:stream'
import { buildApp, loggerOptions } from '../src/app.js'
import { bufferedStdout } from '../src/lib/log-stream.js'
import { as, assertError, build, createUser, testConfig, type TestUser } from './helper.js'

interface StreamedEvent { id: string, type: string, createdAt: string, data: { userId: string | null, actorId: string | null, changes: unknown, user?: { id: string } } }

async function listen (app: FastifyInstance) {
  return await app.listen({ port: 0, host: '127.0.0.1' })
}

/** Resolves with check()'s first truthy answer, re-checked on every change; rejects after ms. */
function waiter (onChange: Set<() => void>) {
  return <T>(check: () => T | undefined | false | null, what: string, ms = 5000) => new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { onChange.delete(test); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)) }, ms)
    function test () {
      const value = check()
      if (value === undefined || value === false || value === null) return
      clearTimeout(timer)
      onChange.delete(test)
      resolve(value)
    }
    onChange.add(test)
    test()
  })
}

/** An SSE stream read with fetch and eventsource-parser: what arrived so far, and a way to wait for more. */
async function openSse (url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
  const frames: EventSourceMessage[] = []
  const comments: string[] = []
  const onChange = new Set<() => void>()
  const changed = () => { for (const listener of [...onChange]) listener() }
  let ended = false
  if (response.ok && response.body) {
    const parser = createParser({
      onEvent (message) { frames.push(message); changed() },
      onComment (comment) { comments.push(comment.trim()); changed() }
    })
    const body = response.body
    ;(async () => {
      const decoder = new TextDecoder()
      try {
        for await (const chunk of body) parser.feed(decoder.decode(chunk, { stream: true }))
      } catch {}
      ended = true
      changed()
    })().catch(() => {})
  }
  const events = () => frames.map(frame => JSON.parse(frame.data) as StreamedEvent)
  const until = waiter(onChange)
  return {
    response,
    frames,
    comments,
    events,
    get ended () { return ended },
    until,
    /** The first event that matches, once it arrived. */
    next: (match: (event: StreamedEvent) => boolean, what: string, ms?: number) => until(() => events().find(match), what, ms),
    close: () => controller.abort()
  }
}

/** A WebSocket and the JSON messages it received. */
async function openWs (url: string, headers: Record<string, string> = {}) {
  const socket = new WebSocket(url, { headers })
  const messages: StreamedEvent[] = []
  const onChange = new Set<() => void>()
  const changed = () => { for (const listener of [...onChange]) listener() }
  let closeCode: number | undefined
  let refused: number | undefined
  socket.on('message', data => { messages.push(JSON.parse(String(data))); changed() })
  socket.on('close', code => { closeCode = code; changed() })
  socket.on('unexpected-response', (_req, res) => { refused = res.statusCode; res.resume(); changed() })
  socket.on('error', () => changed())
  await new Promise<void>(resolve => {
    socket.once('open', () => resolve())
    socket.once('error', () => resolve())
    socket.once('unexpected-response', () => resolve())
  })
  const until = waiter(onChange)
  return {
    socket,
    messages,
    get closeCode () { return closeCode },
    get refused () { return refused },
    until,
    next: (match: (event: StreamedEvent) => boolean, what: string, ms?: number) => until(() => messages.find(match), what, ms),
    close: () => socket.terminate()
  }
}

const bearer = (user: TestUser) => ({ authorization: `Bearer ${user.token}` })

async function createVia (app: FastifyInstance, admin: TestUser) {
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email: `ev-${randomUUID().slice(0, 8)}@example.test`, password: 'Correct-Horse-9', firstName: 'Ev', lastName: 'Stream' } })
  if (res.statusCode !== 201) throw new Error(`create: ${res.statusCode} ${res.body}`)
  return res.json().data.id as string
}

async function rename (app: FastifyInstance, admin: TestUser, id: string, firstName: string) {
  const res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { firstName } })
  if (res.statusCode !== 200) throw new Error(`update: ${res.statusCode} ${res.body}`)
}

async function ticketOf (app: FastifyInstance, user: TestUser) {
  const res = await as(app, user, { method: 'POST', url: '/api/v1/events/ticket' })
  if (res.statusCode !== 200) throw new Error(`ticket: ${res.statusCode} ${res.body}`)
  return res.json().data as { ticket: string, expiresIn: number }
}

t.test('event streams on one instance', async t => {
  const app = await build(t, { eventsHeartbeatMs: 300, eventTicketTtlSec: 1 })
  const base = await listen(app)
  const admin = await createUser(app, { roles: ['admin'] })
  const plain = await createUser(app)

  t.test('SSE: an action arrives as one event with id, type and the Event as JSON data', async t => {
    const stream = await openSse(`${base}/api/v1/events`, bearer(admin))
    t.teardown(stream.close)
    t.equal(stream.response.status, 200)
    t.match(stream.response.headers.get('content-type'), /^text\/event-stream/)
    t.ok(stream.response.headers.get('x-request-id'), 'X-Request-Id, as on every answer')
    t.ok(stream.response.headers.get('x-ratelimit-limit'), 'the rate-limit headers')
    await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
    const id = await createVia(app, admin)
    const event = await stream.next(e => e.type === 'user.created' && e.data.userId === id, 'user.created')
    const frame = stream.frames.find(f => JSON.parse(f.data).id === event.id)!
    t.equal(frame.event, 'user.created', 'event: is the type')
    t.equal(frame.id, event.id, 'id: is the event id')
    t.match(event, { id: /^[0-9a-f-]{36}$/, type: 'user.created', createdAt: /^\d{4}-\d\d-\d\dT.*Z$/, data: { userId: id, actorId: admin.id } })
    t.notMatch(frame.data, /password|hash/i, 'no password or hash in the event')
  })

  t.test('SSE: ?types= sends only those types', async t => {
    const stream = await openSse(`${base}/api/v1/events?types=user.updated`, bearer(admin))
    t.teardown(stream.close)
    await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
    const id = await createVia(app, admin)
    await rename(app, admin, id, 'Filtered')
    await stream.next(e => e.type === 'user.updated' && e.data.userId === id, 'user.updated')
    t.same(stream.events().filter(e => e.type !== 'user.updated'), [], 'nothing of another type')
  })

  t.test('SSE: a user without users:read sees only the events about itself', async t => {
    const stream = await openSse(`${base}/api/v1/events`, bearer(plain))
    t.teardown(stream.close)
    await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
    const other = await createVia(app, admin)
    await rename(app, admin, other, 'NotYours')
    await rename(app, admin, plain.id, 'Yours')
    await stream.next(e => e.type === 'user.updated' && e.data.userId === plain.id, 'the event about itself')
    t.same(stream.events().filter(e => e.data.userId !== plain.id), [], 'no event about anyone else')
  })

  t.test('SSE: Last-Event-ID resumes after that event, in order; an unknown one is 400', async t => {
    const first = await openSse(`${base}/api/v1/events?types=user.updated`, bearer(admin))
    await first.until(() => first.comments.includes('connected'), 'the opening comment')
    const id = await createVia(app, admin)
    await rename(app, admin, id, 'One')
    const one = await first.next(e => e.data.userId === id, 'the first update')
    first.close()
    await rename(app, admin, id, 'Two')
    await rename(app, admin, id, 'Three')
    const resumed = await openSse(`${base}/api/v1/events?types=user.updated`, { ...bearer(admin), 'last-event-id': one.id })
    t.teardown(resumed.close)
    await resumed.until(() => resumed.events().filter(e => e.data.userId === id).length >= 2 && true, 'the two updates since')
    const names = resumed.events().filter(e => e.data.userId === id).map(e => JSON.stringify(e.data.changes))
    t.match(names[0], /Two/, 'the first one after it')
    t.match(names[1], /Three/, 'then the next')
    t.notOk(resumed.events().some(e => e.id === one.id), 'not the event it resumed after')
    // The same through the query, for clients that cannot send headers.
    const byQuery = await openSse(`${base}/api/v1/events?types=user.updated&lastEventId=${one.id}`, bearer(admin))
    t.teardown(byQuery.close)
    await byQuery.next(e => e.data.userId === id && /Two/.test(JSON.stringify(e.data.changes)), 'the update after it')

    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events', headers: { ...bearer(admin), 'last-event-id': randomUUID() } }), 400, 'VALIDATION_ERROR', 'an unknown event')
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events', headers: { ...bearer(admin), 'last-event-id': 'not-an-id' } }), 400, 'VALIDATION_ERROR', 'a malformed id')
  })

  t.test('SSE: a comment heartbeat every EVENTS_HEARTBEAT', async t => {
    const stream = await openSse(`${base}/api/v1/events`, bearer(plain))
    t.teardown(stream.close)
    const started = Date.now()
    await stream.until(() => stream.comments.filter(c => c === 'heartbeat').length >= 2, 'two heartbeats', 3000)
    t.ok(Date.now() - started >= 500, 'not before their interval')
  })

  t.test('SSE: refusals', async t => {
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events' }), 401, 'UNAUTHORIZED', 'no token')
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events', headers: { ...bearer(admin), accept: 'application/json' } }), 406, 'NOT_ACCEPTABLE', 'JSON only')
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events?types=nope', headers: bearer(admin) }), 400, 'VALIDATION_ERROR', 'a malformed type')
    assertError(t, await app.inject({ method: 'GET', url: `/api/v1/events?ticket=${'a'.repeat(43)}` }), 401, 'UNAUTHORIZED', 'an unknown ticket')
    assertError(t, await app.inject({ method: 'POST', url: '/api/v1/events/ticket' }), 401, 'UNAUTHORIZED', 'a ticket needs a login')
  })

  t.test('tickets: work once, for the login that asked, and expire', async t => {
    const { ticket, expiresIn } = await ticketOf(app, plain)
    t.equal(expiresIn, 1, 'as configured (60 s by default)')
    const stream = await openSse(`${base}/api/v1/events?ticket=${ticket}`)
    t.teardown(stream.close)
    t.equal(stream.response.status, 200, 'the ticket opens a stream')
    await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
    await rename(app, admin, plain.id, 'Ticketed')
    await stream.next(e => e.data.userId === plain.id && e.type === 'user.updated', 'its own event')
    assertError(t, await app.inject({ method: 'GET', url: `/api/v1/events?ticket=${ticket}` }), 401, 'UNAUTHORIZED', 'a spent ticket')

    const late = await ticketOf(app, plain)
    await sleep(1300)
    assertError(t, await app.inject({ method: 'GET', url: `/api/v1/events?ticket=${late.ticket}` }), 401, 'UNAUTHORIZED', 'an expired ticket')

    const unused = await ticketOf(app, plain)
    assertError(t, await app.inject({ method: 'GET', url: `/api/v1/events?ticket=${unused.ticket}&types=bad` }), 400, 'VALIDATION_ERROR', 'a bad request')
    const still = await openSse(`${base}/api/v1/events?ticket=${unused.ticket}`)
    t.teardown(still.close)
    t.equal(still.response.status, 200, 'does not spend the ticket')
  })

  t.test('WebSocket: one JSON message per event, with a ticket; same filters and refusals', async t => {
    const { ticket } = await ticketOf(app, admin)
    const ws = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws?ticket=${ticket}&types=user.created`)
    t.teardown(ws.close)
    t.equal(ws.socket.readyState, WebSocket.OPEN, 'open')
    const id = await createVia(app, admin)
    await rename(app, admin, id, 'NotCreated')
    const event = await ws.next(e => e.data.userId === id, 'user.created')
    t.match(event, { type: 'user.created', data: { userId: id } })
    t.same(ws.messages.filter(m => m.type !== 'user.created'), [], 'only the type asked for')

    const again = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws?ticket=${ticket}`)
    t.equal(again.refused, 401, 'a spent ticket is refused before the upgrade')
    const none = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws`)
    t.equal(none.refused, 401, 'no ticket, no token')
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/events/ws', headers: bearer(admin) }), 426, 'UPGRADE_REQUIRED', 'a plain GET')

    const own = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws?ticket=${(await ticketOf(app, plain)).ticket}`)
    t.teardown(own.close)
    await rename(app, admin, id, 'Other')
    await rename(app, admin, plain.id, 'Own')
    await own.next(e => e.data.userId === plain.id, 'its own event')
    t.same(own.messages.filter(m => m.data.userId !== plain.id), [], 'no event about anyone else')
  })

  t.test('a logout ends the stream at the next heartbeat', async t => {
    const user = await createUser(app)
    const stream = await openSse(`${base}/api/v1/events`, bearer(user))
    t.teardown(stream.close)
    const ws = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws?ticket=${(await ticketOf(app, user)).ticket}`)
    t.teardown(ws.close)
    await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
    const res = await as(app, user, { method: 'POST', url: '/api/v1/auth/logout-all' })
    t.equal(res.statusCode, 204)
    await stream.until(() => stream.ended, 'the SSE stream to end', 3000)
    await ws.until(() => ws.closeCode, 'the WebSocket to close', 3000)
    t.equal(ws.closeCode, 1008, 'closed as a policy violation: the login ended')
  })
})

t.test('a client that does not read is dropped once its connection holds EVENTS_MAX_BUFFER', async t => {
  const app = await build(t, { eventsMaxBufferBytes: 64 * 1024 })
  const base = new URL(await listen(app))
  const admin = await createUser(app, { roles: ['admin'] })
  // A raw request whose answer is never read: the kernel's buffers fill, then the server's.
  const { res, socket } = await new Promise<{ res: IncomingMessage, socket: import('node:net').Socket }>((resolve, reject) => {
    const req = httpRequest({ host: base.hostname, port: base.port, path: '/api/v1/events', headers: { ...bearer(admin), accept: 'text/event-stream' } })
    req.on('response', res => { res.pause(); resolve({ res, socket: req.socket! }) })
    req.on('error', reject)
    req.end()
  })
  t.equal(res.statusCode, 200)
  socket.on('error', () => {})
  const connections = () => new Promise<number>(resolve => app.server.getConnections((_err, n) => resolve(n)))
  const before = await connections()
  // Events of about 100 KB each, through the real path (audit row, event, notification).
  const big = 'x'.repeat(100_000)
  let written = 0
  const deadline = Date.now() + 60_000
  while (await connections() >= before && Date.now() < deadline) {
    await app.database.db.insertInto('userAuditLog').values({ action: 'user.updated', userId: admin.id, actorId: admin.id, changes: JSON.stringify({ bio: big }) }).execute()
    written += big.length
    await sleep(5)
  }
  t.ok(await connections() < before, `the server cut the connection (after about ${(written / 1e6).toFixed(1)} MB of events)`)
  t.ok(written < 200e6, 'long before it could have buffered without bound')
  // The app still serves everyone else.
  const stream = await openSse(`${base.origin}/api/v1/events`, bearer(admin))
  t.teardown(stream.close)
  t.equal(stream.response.status, 200)
})

t.test('closing the app ends every open stream at once', async t => {
  const app = await buildApp(testConfig())
  await app.ready()
  const base = await listen(app)
  const admin = await createUser(app, { roles: ['admin'] })
  const sse = await openSse(`${base}/api/v1/events`, bearer(admin))
  const ws = await openWs(`${base.replace('http', 'ws')}/api/v1/events/ws?ticket=${(await ticketOf(app, admin)).ticket}`)
  await sse.until(() => sse.comments.includes('connected'), 'the opening comment')
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 5000, `app.close() returned in ${Date.now() - started} ms`)
  await sse.until(() => sse.ended, 'the SSE stream to end', 2000)
  await ws.until(() => ws.closeCode, 'the WebSocket to close', 2000)
  t.equal(ws.closeCode, 1001, 'WebSocket closed as going away')
})

t.test('two instances on one database: an action on A reaches a subscriber on B within 1 s', { skip: process.env.DATABASE_URL ? false : 'two instances need a shared PostgreSQL (DATABASE_URL); the embedded database belongs to one process' }, async t => {
  // One deployment: the same Redis keys (testConfig gives each app its own prefix otherwise).
  const redisKeyPrefix = `test:${randomUUID()}:`
  const a = await build(t, { redisKeyPrefix })
  const b = await build(t, { redisKeyPrefix })
  const baseB = await listen(b)
  const admin = await createUser(a, { roles: ['admin'] })
  // A ticket made on A works on B (tickets are shared through Redis; without Redis each instance keeps its own).
  const opener = process.env.REDIS_URL ? `?ticket=${(await ticketOf(a, admin)).ticket}` : ''
  const stream = await openSse(`${baseB}/api/v1/events${opener}`, opener ? {} : bearer(admin))
  t.teardown(stream.close)
  t.equal(stream.response.status, 200)
  await stream.until(() => stream.comments.includes('connected'), 'the opening comment')
  const fromRequest: number[] = []
  const fromAnswer: number[] = []
  for (let i = 0; i < 10; i++) {
    const started = performance.now()
    const id = await createVia(a, admin)
    const answered = performance.now()
    await stream.next(e => e.type === 'user.created' && e.data.userId === id, `event ${i} on B`, 1000)
    fromRequest.push(performance.now() - started)
    fromAnswer.push(performance.now() - answered)
  }
  const summary = (ms: number[]) => { ms.sort((x, y) => x - y); return `median ${ms[5].toFixed(1)} ms, max ${ms[9].toFixed(1)} ms` }
  t.ok(Math.max(...fromRequest) < 1000, 'every one within 1 s of the request on A')
  t.comment(`fan-out A -> B: from the request ${summary(fromRequest)}; from A's answer (the commit) ${summary(fromAnswer)}`)
})

t.test('a ticket in the URL is masked in the request log', async t => {
  const lines: string[] = []
  const config = testConfig({}, { LOG_LEVEL: 'info' })
  const stdout = bufferedStdout()
  t.teardown(() => stdout.close())
  const base = loggerOptions(config, stdout)
  const app = await buildApp(config, {
    logger: { ...(typeof base === 'object' ? base : {}), stream: new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } }) }
  })
  await app.ready()
  t.teardown(() => app.close())
  const user = await createUser(app)
  const { ticket } = await ticketOf(app, user)
  // Refused by validation, so the ticket is still live when its request is logged.
  const res = await app.inject({ method: 'GET', url: `/api/v1/events?types=bad&ticket=${ticket}` })
  t.equal(res.statusCode, 400)
  await sleep(50)
  t.ok(lines.some(line => line.includes('/api/v1/events?types=bad&ticket=[redacted]')), 'the request line has the URL, masked')
  t.notOk(lines.some(line => line.includes(ticket)), 'the ticket is in no log line')
})

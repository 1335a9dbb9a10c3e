import t from 'tap'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook as StandardWebhook } from 'standardwebhooks'
import { backoffMs } from '../src/services/webhooks.js'
import { verifyWebhook, WebhookVerificationError } from '../sdk/src/index.js'
import { as, assertError, build, createUser, type TestUser } from './helper.js'

// The receiver is on loopback, so delivery runs with WEBHOOK_ALLOW_PRIVATE=true; retries wait
// 1 ms instead of a minute (then 4, 16, 64, 256 ms); the circuit test lowers the threshold to 3 failures in a row.
const app = await build(t, {}, {
  WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_BASE: '1ms', WEBHOOK_MAX_ATTEMPTS: '6', WEBHOOK_CIRCUIT_THRESHOLD: '100', WEBHOOK_CIRCUIT_COOLDOWN: '1h'
})
const admin = await createUser(app, { roles: ['admin'] })

interface Received { headers: IncomingHttpHeaders, body: string }

/** A real HTTP receiver: it records every request and answers with the next queued status (200 when none). */
async function receiver (t: { teardown (fn: () => unknown): void }) {
  const received: Received[] = []
  const statuses: number[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      received.push({ headers: req.headers, body })
      res.statusCode = statuses.shift() ?? 200
      res.end('ok')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const { port } = server.address() as AddressInfo
  return { url: `http://localhost:${port}/hook`, received, statuses }
}

async function register (user: TestUser, payload: object) {
  const res = await as(app, user, { method: 'POST', url: '/api/v1/webhooks', payload })
  return res
}

/** Makes an event about a fresh user (user.created, auth.login) and one update; resolves to the update's audit id. */
async function someEvent (): Promise<{ userId: string, eventId: string }> {
  const user = await createUser(app)
  const res = await as(app, user, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Hooked' }, headers: { 'x-request-id': `wh-${user.id}` } })
  if (res.statusCode !== 200) throw new Error(res.body)
  const row = await app.database.db.selectFrom('userAuditLog').select('id').where('requestId', '=', `wh-${user.id}`).executeTakeFirstOrThrow()
  return { userId: user.id, eventId: row.id }
}

async function deliveries (webhookId: string, query = '') {
  const res = await as(app, admin, { method: 'GET', url: `/api/v1/webhooks/${webhookId}/deliveries${query}` })
  if (res.statusCode !== 200) throw new Error(res.body)
  return res.json()
}

/** Delivers the webhook's due deliveries until none is pending, waiting for each retry's (short) backoff. */
async function deliverAll (webhookId: string, rounds = 20) {
  for (let i = 0; i < rounds; i++) {
    await app.webhooksService.deliverPending(webhookId)
    const pending = (await deliveries(webhookId, '?limit=100')).data.filter((d: { status: string }) => d.status === 'pending')
    if (pending.length === 0) return
    const due = Math.min(...pending.map((d: { nextAttemptAt: string }) => Date.parse(d.nextAttemptAt))) - Date.now()
    await new Promise(resolve => setTimeout(resolve, Math.min(Math.max(due, 5), 1000)))
  }
}

t.test('a webhook receives every matching event, signed per Standard Webhooks, and its secret is shown once', async t => {
  const hook = await receiver(t)
  const res = await register(admin, { url: hook.url, events: ['user.updated'], description: 'test receiver' })
  t.equal(res.statusCode, 201)
  const webhook = res.json().data
  t.match(webhook.secret, /^whsec_[A-Za-z0-9+/=]+$/)
  t.match(webhook, { url: hook.url, events: ['user.updated'], active: true, consecutiveFailures: 0, circuitOpenUntil: null })

  const { eventId, userId } = await someEvent()
  await deliverAll(webhook.id)
  const mine = hook.received.filter(r => r.headers['webhook-id'] === eventId)
  t.equal(mine.length, 1, 'delivered once')
  const payload = new StandardWebhook(webhook.secret).verify(mine[0].body, mine[0].headers as Record<string, string>) as any
  t.match(payload, { id: eventId, type: 'user.updated', data: { userId, changes: { firstName: { to: 'Hooked' } }, user: { id: userId, firstName: 'Hooked' } } })
  t.match(mine[0].headers['webhook-signature'], /^v1,[A-Za-z0-9+/=]+$/)
  t.notOk(hook.received.some(r => JSON.parse(r.body).type !== 'user.updated'), 'only the subscribed type')

  const list = await deliveries(webhook.id)
  const delivery = list.data.find((d: { eventId: string }) => d.eventId === eventId)
  t.match(delivery, { eventType: 'user.updated', status: 'succeeded', attempts: 1, responseStatus: 200, nextAttemptAt: null })

  // The secret is never shown again, nor written to the audit trail.
  for (const url of [`/api/v1/webhooks/${webhook.id}`, '/api/v1/webhooks']) {
    const got = await as(app, admin, { method: 'GET', url })
    t.equal(got.statusCode, 200)
    t.notOk(got.body.includes(webhook.secret.slice(6)), `${url}: no secret`)
  }
  const audit = await app.database.db.selectFrom('userAuditLog').select(['action', 'changes']).where('action', 'like', 'webhook.%').execute()
  t.ok(audit.some(a => a.action === 'webhook.created'))
  t.notOk(JSON.stringify(audit).includes(webhook.secret.slice(6)), 'no secret in the audit trail')
})

t.test('a 500 is retried with backoff until a 2xx; the last failure is kept in the log', async t => {
  const hook = await receiver(t)
  const webhook = (await register(admin, { url: hook.url, events: ['user.updated'] })).json().data
  hook.statuses.push(500, 503)
  const { eventId } = await someEvent()
  await deliverAll(webhook.id)
  const attempts = hook.received.filter(r => r.headers['webhook-id'] === eventId)
  t.equal(attempts.length, 3, 'two failures, then the success')
  t.equal(new Set(attempts.map(a => a.headers['webhook-id'])).size, 1, 'the same webhook-id on every attempt')
  const [delivery] = (await deliveries(webhook.id)).data
  t.match(delivery, { status: 'succeeded', attempts: 3, responseStatus: 200 })
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/webhooks/${webhook.id}` })).json().data.consecutiveFailures, 0, 'a success closes the count')
})

t.test('backoff: exponential with jitter, about a day over the default attempts', async t => {
  const minute = 60_000
  t.equal(backoffMs(1, minute, () => 0.5), minute)
  t.equal(backoffMs(2, minute, () => 0.5), 4 * minute)
  t.ok(backoffMs(3, minute, () => 0) < backoffMs(3, minute, () => 1), 'jitter spreads retries')
  const total = [1, 2, 3, 4, 5, 6].reduce((sum, n) => sum + backoffMs(n, minute, () => 0.5), 0)
  t.ok(total > 20 * 3600_000 && total < 26 * 3600_000, `7 attempts span ${(total / 3600_000).toFixed(1)} h`)
})

t.test('a delivery that keeps failing ends failed; a manual retry (202) attempts it again', async t => {
  const hook = await receiver(t)
  const webhook = (await register(admin, { url: hook.url, events: ['user.updated'] })).json().data
  hook.statuses.push(500, 500, 500, 500, 500, 500)
  const { eventId } = await someEvent()
  await deliverAll(webhook.id)
  let [delivery] = (await deliveries(webhook.id)).data
  t.match(delivery, { eventId, status: 'failed', attempts: 6, responseStatus: 500, nextAttemptAt: null, lastError: 'the receiver answered 500' })

  const retried = await as(app, admin, { method: 'POST', url: `/api/v1/webhooks/${webhook.id}/deliveries/${delivery.id}/retry` })
  t.equal(retried.statusCode, 202)
  t.equal(retried.json().data.status, 'pending')
  await deliverAll(webhook.id)
  ;[delivery] = (await deliveries(webhook.id)).data
  t.match(delivery, { status: 'succeeded', attempts: 7, responseStatus: 200 })

  assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/webhooks/${webhook.id}/deliveries/${webhook.id}/retry` }), 404, 'NOT_FOUND')
})

t.test('the circuit opens after repeated failures: no attempt until it closes', async t => {
  const hook = await receiver(t)
  const webhook = (await register(admin, { url: hook.url, events: ['user.updated'] })).json().data
  hook.statuses.push(500, 500, 500, 500, 500, 500, 500, 500)
  const { eventId } = await someEvent()
  app.config.webhookCircuitThreshold = 3
  t.teardown(() => { app.config.webhookCircuitThreshold = 100 })
  await deliverAll(webhook.id, 5)
  const before = hook.received.filter(r => r.headers['webhook-id'] === eventId).length
  t.equal(before, 3, 'three attempts, then the circuit is open')
  const state = (await as(app, admin, { method: 'GET', url: `/api/v1/webhooks/${webhook.id}` })).json().data
  t.equal(state.consecutiveFailures, 3)
  t.ok(Date.parse(state.circuitOpenUntil) > Date.now() + 50 * 60_000, 'open for the cooldown')
  const [delivery] = (await deliveries(webhook.id)).data
  t.match(delivery, { status: 'pending', attempts: 3 })
  t.ok(Date.parse(delivery.nextAttemptAt) >= Date.parse(state.circuitOpenUntil) - 1000, 'the delivery waits for the circuit')
  await app.webhooksService.deliverPending(webhook.id)
  t.equal(hook.received.filter(r => r.headers['webhook-id'] === eventId).length, 3, 'no attempt while open')
})

t.test('rotation: the new secret signs at once, the old one too during its grace', async t => {
  const hook = await receiver(t)
  const created = (await register(admin, { url: hook.url, events: ['*'] })).json().data
  const rotated = await as(app, admin, { method: 'POST', url: `/api/v1/webhooks/${created.id}/rotate-secret` })
  t.equal(rotated.statusCode, 200)
  const { secret } = rotated.json().data
  t.not(secret, created.secret)
  const { eventId } = await someEvent()
  await deliverAll(created.id)
  const mine = hook.received.find(r => r.headers['webhook-id'] === eventId)!
  const headers = mine.headers as Record<string, string>
  t.equal(headers['webhook-signature'].split(' ').length, 2, 'two signatures')
  t.doesNotThrow(() => new StandardWebhook(secret).verify(mine.body, headers), 'the new secret verifies')
  t.doesNotThrow(() => new StandardWebhook(created.secret).verify(mine.body, headers), 'the old one still does')
  t.throws(() => new StandardWebhook(`whsec_${Buffer.from('another-secret-entirely').toString('base64')}`).verify(mine.body, headers), 'another does not')
  t.match(await verifyWebhook(secret, mine.body, headers), { id: eventId }, 'the SDK verifies the real delivery with the new secret')
  t.match(await verifyWebhook(created.secret, mine.body, headers), { id: eventId }, 'and with the old one')
})

t.test('the SDK\'s verifyWebhook (WebCrypto) accepts what standardwebhooks signs, and nothing else', async t => {
  const secret = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`
  const body = JSON.stringify({ id: 'e1', type: 'user.updated', data: { ok: true } })
  const at = new Date()
  const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new StandardWebhook(secret).sign('msg_1', at, body) }
  t.same(await verifyWebhook(secret, body, headers), JSON.parse(body))
  t.same(await verifyWebhook(secret, body, new Headers(headers)), JSON.parse(body), 'a Headers object too')
  t.same(await verifyWebhook(secret, body, { ...headers, 'webhook-signature': `v1,AAAA ${headers['webhook-signature']}` }), JSON.parse(body), 'any of several signatures')
  const refused = async (what: string, ...args: Parameters<typeof verifyWebhook>) => {
    await t.rejects(verifyWebhook(...args), WebhookVerificationError, what)
  }
  await refused('a changed body', secret, body.replace('true', 'false'), headers)
  await refused('another id', secret, body, { ...headers, 'webhook-id': 'msg_2' })
  await refused('another secret', `whsec_${Buffer.from('another-secret-of-32-bytes-long!').toString('base64')}`, body, headers)
  await refused('an old timestamp', secret, body, headers, { now: at.getTime() + 600_000 })
  await refused('no signature', secret, body, { ...headers, 'webhook-signature': '' })
  await refused('a v2 signature only', secret, body, { ...headers, 'webhook-signature': headers['webhook-signature'].replace('v1,', 'v2,') })
})

t.test('create, list, get, patch and delete; webhooks:manage only', async t => {
  const hook = await receiver(t)
  const webhook = (await register(admin, { url: hook.url, events: ['user.created'] })).json().data
  const patched = await as(app, admin, { method: 'PATCH', url: `/api/v1/webhooks/${webhook.id}`, payload: { events: ['user.created', 'user.deleted'], active: false, description: 'off' } })
  t.equal(patched.statusCode, 200)
  t.match(patched.json().data, { events: ['user.created', 'user.deleted'], active: false, description: 'off' })
  const listed = await as(app, admin, { method: 'GET', url: '/api/v1/webhooks' })
  t.ok(listed.json().data.some((w: { id: string }) => w.id === webhook.id))
  await someEvent()
  t.equal((await deliveries(webhook.id)).data.length, 0, 'an inactive webhook gets no deliveries')

  const user = await createUser(app)
  assertError(t, await register(user, { url: hook.url, events: ['*'] }), 403, 'FORBIDDEN')
  assertError(t, await as(app, user, { method: 'GET', url: '/api/v1/webhooks' }), 403, 'FORBIDDEN')
  assertError(t, await as(app, undefined, { method: 'GET', url: '/api/v1/webhooks' }), 401, 'UNAUTHORIZED')
  assertError(t, await register(admin, { url: 'ftp://example.test/x', events: ['*'] }), 400, 'VALIDATION_ERROR')
  assertError(t, await register(admin, { url: hook.url, events: [] }), 400, 'VALIDATION_ERROR')
  assertError(t, await register(admin, { url: hook.url, events: ['*'], secret: 'mine' }), 400, 'VALIDATION_ERROR')
  assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/webhooks/not-a-uuid' }), 400, 'VALIDATION_ERROR')
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/webhooks/${webhook.id}/deliveries?cursor=bogus` }), 400, 'VALIDATION_ERROR')

  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/webhooks/${webhook.id}` })).statusCode, 204)
  assertError(t, await as(app, admin, { method: 'GET', url: `/api/v1/webhooks/${webhook.id}` }), 404, 'NOT_FOUND')
  assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/webhooks/${webhook.id}` }), 404, 'NOT_FOUND')
})

t.test('deliveries page newest first with a cursor', async t => {
  const hook = await receiver(t)
  const webhook = (await register(admin, { url: hook.url, events: ['user.updated'] })).json().data
  const first = await someEvent()
  const second = await someEvent()
  const page1 = await deliveries(webhook.id, '?limit=1')
  t.equal(page1.data[0].eventId, second.eventId, 'newest first')
  t.equal(page1.pagination.hasNext, true)
  const page2 = await deliveries(webhook.id, `?limit=1&cursor=${page1.pagination.nextCursor}`)
  t.equal(page2.data[0].eventId, first.eventId)
  t.equal(page2.pagination.nextCursor, null)
})

t.test('SSRF: a host that resolves to loopback, private or link-local is refused unless WEBHOOK_ALLOW_PRIVATE=true', async t => {
  const strict = await build(t)
  const strictAdmin = await createUser(strict, { roles: ['admin'] })
  for (const url of ['http://localhost:9/x', 'http://127.0.0.1/x', 'http://[::1]/x', 'http://169.254.169.254/latest/meta-data', 'http://10.0.0.1/',
    'http://192.168.1.1/', 'http://100.64.0.1/', 'http://[fd00::1]/', 'http://[::ffff:127.0.0.1]/', 'http://0.0.0.0/', 'http://nowhere.invalid/']) {
    const res = await as(strict, strictAdmin, { method: 'POST', url: '/api/v1/webhooks', payload: { url, events: ['*'] } })
    const error = assertError(t, res, 400, 'VALIDATION_ERROR', url)
    t.equal(error.details?.[0]?.field, 'url')
  }
  const hook = await receiver(t)
  const allowed = await register(admin, { url: hook.url, events: ['*'] })
  t.equal(allowed.statusCode, 201, 'allowed with WEBHOOK_ALLOW_PRIVATE=true')
  const webhook = allowed.json().data

  // Checked again on update, and at delivery time (DNS rebinding): once private addresses are refused, nothing is sent.
  const { eventId } = await someEvent()
  app.config.webhookAllowPrivate = false
  try {
    assertError(t, await as(app, admin, { method: 'PATCH', url: `/api/v1/webhooks/${webhook.id}`, payload: { url: 'http://localhost/x' } }), 400, 'VALIDATION_ERROR')
    await app.webhooksService.deliverPending(webhook.id)
  } finally {
    app.config.webhookAllowPrivate = true
  }
  t.equal(hook.received.length, 0, 'no request reached the receiver')
  const delivery = (await deliveries(webhook.id, '?limit=100')).data.find((d: { eventId: string }) => d.eventId === eventId)
  t.match(delivery, { status: 'pending', attempts: 1, responseStatus: null, lastError: /loopback, private or link-local/ })
})

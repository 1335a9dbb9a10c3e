// The SDK (sdk/) against the live service over real HTTP on a loopback port, in whichever
// database mode the suite runs (testConfig reads DATABASE_URL / REDIS_URL).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { ApiError, createClient, isMfaChallenge, type LoginAnswer, type Tokens, type TokenPair } from '../sdk/src/index.js'
import { generate } from 'otplib'
import { build, createUser, PASSWORD, uniqueEmail } from './helper.js'

/** The token pair of a login without a second factor. */
function pairOf (answer: LoginAnswer): TokenPair {
  if (isMfaChallenge(answer)) throw new Error('the login asked for a second factor')
  return answer
}

interface Seen { method: string, path: string, status: number, code?: string, retryAfter?: string, requestId?: string }

/** The global fetch, recording every request the SDK sends and what it got back. */
function recorder () {
  const seen: Seen[] = []
  async function fetch (request: Request) {
    const response = await globalThis.fetch(request)
    const body = response.ok ? undefined : await response.clone().json().catch(() => undefined) as { error?: { code?: string } } | undefined
    seen.push({
      method: request.method,
      path: new URL(request.url).pathname,
      status: response.status,
      code: body?.error?.code,
      retryAfter: response.headers.get('retry-after') ?? undefined,
      requestId: response.headers.get('x-request-id') ?? undefined
    })
    return response
  }
  const count = (path: string, status?: number) => seen.filter(s => s.path === path && (status === undefined || s.status === status)).length
  return { fetch, seen, count }
}

async function listen (app: FastifyInstance) {
  return await app.listen({ port: 0, host: '127.0.0.1' })
}

/** The error a promise rejects with (fails the test when it resolves). */
async function caught (t: Test, promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise
  } catch (err) {
    t.ok(err instanceof ApiError, `an ApiError (${(err as Error).name}: ${(err as Error).message})`)
    return err as ApiError
  }
  t.fail('resolved; an ApiError was expected')
  return new ApiError(0, 'UNEXPECTED_RESPONSE', 'resolved')
}

const tokensOf = (user: { token: string, refreshToken: string }): Tokens => ({ accessToken: user.token, refreshToken: user.refreshToken })

t.test('the SDK over the default configuration', async t => {
  const app = await build(t)
  const baseUrl = await listen(app)
  const admin = await createUser(app, { roles: ['admin'] })

  t.test('login keeps the token pair; calls carry it; tokens can be persisted and restored; logout forgets them', async t => {
    const user = await createUser(app)
    const saved: Array<Tokens | null> = []
    const rec = recorder()
    const sdk = createClient({ baseUrl, fetch: rec.fetch, onTokens: tokens => saved.push(tokens) })
    t.equal(sdk.tokens, null, 'no tokens before login')
    t.equal((await caught(t, sdk.GET('/api/v1/auth/me'))).code, 'UNAUTHORIZED', 'anonymous before login')

    const answer = pairOf(await sdk.login(user.email, user.password))
    t.equal(answer.user.id, user.id, 'login answers with the user')
    t.same(sdk.tokens, { accessToken: answer.accessToken, refreshToken: answer.refreshToken }, 'the pair is held')
    t.same(saved, [sdk.tokens], 'onTokens got the pair')

    const { data } = await sdk.GET('/api/v1/auth/me')
    t.equal(data?.data.id, user.id, 'an authenticated call')
    t.ok(Array.isArray(data?.data.permissions), 'typed data: permissions')

    const restored = createClient({ baseUrl, tokens: saved[0] })
    t.equal((await restored.GET('/api/v1/auth/me')).data?.data.id, user.id, 'a client built from persisted tokens is logged in')

    await sdk.logout()
    t.equal(sdk.tokens, null, 'logout forgets the tokens')
    t.same(saved, [saved[0], null], 'and tells onTokens')
    const ended = await caught(t, restored.GET('/api/v1/auth/me'))
    t.equal(ended.code, 'UNAUTHORIZED', 'the logged-out login is over on the service too')
    t.same(restored.tokens, saved[0], 'a 401 other than TOKEN_EXPIRED keeps the tokens (no refresh attempted)')
    t.equal(rec.count('/api/v1/auth/refresh'), 0, 'no refresh was attempted')

    const wrong = await caught(t, sdk.login(user.email, 'Wrong-password-1'))
    t.equal(wrong.status, 401)
    t.equal(wrong.code, 'INVALID_CREDENTIALS')
    t.equal(sdk.tokens, null, 'a failed login stores nothing')
  })

  t.test('a login with a second factor: the challenge, then verifyMfa keeps the pair', async t => {
    const user = await createUser(app)
    const owner = createClient({ baseUrl, tokens: tokensOf(user) })
    const { data: setup } = await owner.POST('/api/v1/auth/mfa/totp/setup')
    const secret = setup!.data.secret
    // The previous step's code confirms (the server allows one step of drift), so the current one is still unused.
    const confirm = await owner.POST('/api/v1/auth/mfa/totp/confirm', { body: { code: await generate({ secret, epoch: Math.floor(Date.now() / 1000) - 30 }) } })
    t.equal(confirm.data?.data.recoveryCodes.length, 10)

    const sdk = createClient({ baseUrl })
    const answer = await sdk.login(user.email, user.password)
    t.ok(isMfaChallenge(answer), 'the login answers the challenge')
    t.equal(sdk.tokens, null, 'and keeps no tokens')
    if (!isMfaChallenge(answer)) return
    t.same(answer.methods, ['totp', 'recovery_code'])
    const wrong = await caught(t, sdk.verifyMfa(answer.mfaToken, { recoveryCode: 'zzzzz-zzzzz' }))
    t.equal(wrong.code, 'INVALID_MFA_CODE')
    const pair = await sdk.verifyMfa(answer.mfaToken, { recoveryCode: confirm.data!.data.recoveryCodes[0] })
    t.same(sdk.tokens, { accessToken: pair.accessToken, refreshToken: pair.refreshToken }, 'the pair is held')
    t.equal((await sdk.GET('/api/v1/auth/me')).data?.data.id, user.id)
  })

  t.test('errors are ApiErrors with the status, the contract code, details and the request id', async t => {
    const rec = recorder()
    const sdk = createClient({ baseUrl, fetch: rec.fetch, tokens: tokensOf(admin) })

    const missing = await caught(t, sdk.GET('/api/v1/users/{id}', { params: { path: { id: randomUUID() } }, headers: { 'x-request-id': 'sdk-test-404' } }))
    t.equal(missing.status, 404)
    t.equal(missing.code, 'NOT_FOUND')
    t.equal(missing.requestId, 'sdk-test-404', 'requestId is the one the client sent')
    t.match(missing.message, /not found/)

    const malformed = await caught(t, sdk.GET('/api/v1/users/{id}', { params: { path: { id: 'not-a-uuid' } } }))
    t.equal(malformed.status, 400)
    t.equal(malformed.code, 'VALIDATION_ERROR')
    t.equal(malformed.requestId, rec.seen.at(-1)?.requestId, 'requestId is the answer\'s X-Request-Id')

    const weak = await caught(t, sdk.POST('/api/v1/users', { body: { email: uniqueEmail('weak'), password: 'short', firstName: 'W', lastName: 'P' } }))
    t.equal(weak.code, 'VALIDATION_ERROR')
    t.ok(weak.details.some(d => d.field === 'password'), 'details name the field')

    const email = uniqueEmail('taken')
    await sdk.POST('/api/v1/users', { body: { email, password: PASSWORD, firstName: 'T', lastName: 'K' } })
    const taken = await caught(t, sdk.POST('/api/v1/users', { body: { email, password: PASSWORD, firstName: 'T', lastName: 'K' } }))
    t.equal(taken.status, 409)
    t.equal(taken.code, 'EMAIL_TAKEN')
  })

  t.test('users() and auditLogs() follow nextCursor and return each item exactly once', async t => {
    const rec = recorder()
    const sdk = createClient({ baseUrl, fetch: rec.fetch, tokens: tokensOf(admin) })
    const tag = `Cursor${randomUUID().slice(0, 8)}`
    const created = new Set<string>()
    for (let i = 0; i < 25; i++) {
      const { data } = await sdk.POST('/api/v1/users', { body: { email: uniqueEmail('cursor'), password: PASSWORD, firstName: `F${i}`, lastName: tag } })
      created.add(data!.data.id)
    }

    const ids: string[] = []
    for await (const user of sdk.users({ q: tag, limit: 10, sort: 'email' })) ids.push(user.id!)
    t.equal(ids.length, 25, 'every user')
    t.same(new Set(ids), created, 'exactly the users created, none twice')
    t.equal(rec.count('/api/v1/users', 200), 3, 'three pages of ten')

    const all = []
    for await (const user of sdk.users({ q: tag })) all.push(user)
    t.equal(all.length, 25, 'without a limit: one large page')

    const entries: Array<{ id: string, userId: string | null }> = []
    for await (const entry of sdk.auditLogs({ actorId: admin.id, action: 'user.created', limit: 10 })) entries.push(entry)
    t.equal(new Set(entries.map(e => e.id)).size, entries.length, 'no audit entry twice')
    t.ok([...created].every(id => entries.some(e => e.userId === id)), 'an entry for every user created')
    t.ok(rec.count('/api/v1/audit-logs', 200) >= 3, 'several pages of audit entries')

    let early = 0
    for await (const user of sdk.users({ q: tag, limit: 10 })) {
      t.ok(user.id)
      if (++early === 5) break
    }
    t.equal(rec.count('/api/v1/users', 200), 3 + 1 + 1, 'stopping early fetches no further page')
  })

  t.test('the client is typed by the document', async t => {
    const sdk = createClient({ baseUrl })
    // Never called: these lines only have to (fail to) compile, which `npm run typecheck` checks.
    const typeChecks = () => [
      // @ts-expect-error: not a path of the document
      sdk.GET('/api/v1/nope'),
      // @ts-expect-error: a path parameter is required
      sdk.GET('/api/v1/users/{id}'),
      // @ts-expect-error: the password is a string
      sdk.POST('/api/v1/auth/login', { body: { email: 'a@b.c', password: 1 } })
    ]
    t.type(typeChecks, 'function')
  })
})

t.test('automatic refresh (access tokens that live 3 s)', async t => {
  // 3 s: a refreshed token then lives at least 2 s (exp is in whole seconds), ample for the retries.
  const app = await build(t, { jwtExpirySec: 3 })
  const baseUrl = await listen(app)
  const expire = () => sleep(3100)

  t.test('ten concurrent calls with an expired token make one refresh; the rotated pair is stored and used', async t => {
    const user = await createUser(app)
    const saved: Array<Tokens | null> = []
    const rec = recorder()
    // The first TOKEN_EXPIRED answer reaches its caller only after the refresh has come back:
    // that caller must use the new token, not refresh again (its refresh token is already spent).
    let refreshed = () => {}
    const afterRefresh = new Promise<void>(resolve => { refreshed = resolve })
    let held = false
    async function fetch (request: Request) {
      const response = await rec.fetch(request)
      if (request.url.endsWith('/api/v1/auth/refresh')) refreshed()
      if (response.status === 401 && !held) {
        held = true
        await afterRefresh
      }
      return response
    }
    const sdk = createClient({ baseUrl, fetch, onTokens: tokens => saved.push(tokens) })
    const first = pairOf(await sdk.login(user.email, user.password))
    await expire()

    const answers = await Promise.all(Array.from({ length: 10 }, () => sdk.GET('/api/v1/auth/me')))
    t.ok(held, 'one answer was held until the refresh was done')
    t.ok(answers.every(a => a.data?.data.id === user.id), 'all ten succeed')
    t.equal(rec.seen.filter(s => s.path === '/api/v1/auth/me' && s.code === 'TOKEN_EXPIRED').length, 10, 'all ten were refused as TOKEN_EXPIRED first')
    t.equal(rec.count('/api/v1/auth/refresh'), 1, 'exactly one refresh request')
    t.equal(rec.count('/api/v1/auth/me', 200), 10, 'each call sent again once')
    t.not(sdk.tokens?.refreshToken, first.refreshToken, 'the refresh token was rotated')
    t.not(sdk.tokens?.accessToken, first.accessToken, 'a new access token')
    t.same(saved, [{ accessToken: first.accessToken, refreshToken: first.refreshToken }, sdk.tokens], 'onTokens got the login pair, then the rotated one')

    await expire()
    const again = await sdk.GET('/api/v1/auth/me')
    t.equal(again.data?.data.id, user.id, 'the stored rotated refresh token works for the next refresh')
    t.equal(rec.count('/api/v1/auth/refresh', 200), 2)
  })

  t.test('a refused refresh clears the tokens and throws the typed error to every waiting caller', async t => {
    const user = await createUser(app)
    const saved: Array<Tokens | null> = []
    const rec = recorder()
    const sdk = createClient({ baseUrl, fetch: rec.fetch, onTokens: tokens => saved.push(tokens) })
    await sdk.login(user.email, user.password)
    // Someone else (a stolen copy, another tab without shared storage) spends the refresh token first.
    const stolen = await fetch(`${baseUrl}/api/v1/auth/refresh`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: sdk.tokens!.refreshToken })
    })
    t.equal(stolen.status, 200)
    const garbage = createClient({ baseUrl, fetch: rec.fetch, tokens: { accessToken: user.token, refreshToken: 'not-a-refresh-token' } })
    await expire()

    const results = await Promise.allSettled(Array.from({ length: 3 }, () => sdk.GET('/api/v1/auth/me')))
    t.equal(rec.count('/api/v1/auth/refresh'), 1, 'one refresh for the three')
    for (const result of results) {
      t.equal(result.status, 'rejected')
      const err = (result as PromiseRejectedResult).reason
      t.ok(err instanceof ApiError, 'an ApiError')
      t.equal(err.status, 401)
      t.equal(err.code, 'TOKEN_REUSED', 'the refresh\'s own code')
    }
    t.equal(sdk.tokens, null, 'the tokens are cleared')
    t.equal(saved.at(-1), null, 'onTokens heard of it')
    t.equal((await caught(t, sdk.GET('/api/v1/auth/me'))).code, 'UNAUTHORIZED', 'later calls go out without a token')
    t.equal(rec.count('/api/v1/auth/refresh'), 1, 'and try no refresh')

    const invalid = await caught(t, garbage.GET('/api/v1/auth/me'))
    t.equal(invalid.status, 401)
    t.equal(invalid.code, 'UNAUTHORIZED', 'an unknown refresh token')
    t.equal(garbage.tokens, null, 'cleared too')
  })
})

t.test('retries after 429 honour Retry-After, within the bounds (3 requests per 2 s)', async t => {
  const app = await build(t, { rateLimitMax: 3, rateLimitWindowMs: 2000 })
  const baseUrl = await listen(app)
  const admin = await createUser(app, { roles: ['admin'] })
  /** Spends what is left of this client IP's budget in the current window. */
  async function exhaust () {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${baseUrl}/api/v1/auth/me`)
      if (res.status === 429) return
    }
    throw new Error('the budget did not run out')
  }

  t.test('a POST refused with 429 waits Retry-After and is sent again, body and all', async t => {
    const rec = recorder()
    const sdk = createClient({ baseUrl, fetch: rec.fetch, tokens: tokensOf(admin) })
    await exhaust()
    const email = uniqueEmail('retried')
    const started = performance.now()
    const { data } = await sdk.POST('/api/v1/users', { body: { email, password: PASSWORD, firstName: 'R', lastName: 'Y' } })
    const waited = performance.now() - started
    t.equal(data?.data.email, email, 'created, from the body sent again')
    t.same(rec.seen.map(s => s.status), [429, 201], 'refused once, then answered')
    const retryAfter = Number(rec.seen[0].retryAfter)
    t.ok(retryAfter >= 1, `Retry-After ${retryAfter} s`)
    t.ok(waited >= retryAfter * 1000 - 5, `waited ${Math.round(waited)} ms, Retry-After says ${retryAfter * 1000}`)
  })

  t.test('gives up with RATE_LIMITED when Retry-After is longer than maxDelayMs, or attempts are spent', async t => {
    const rec = recorder()
    const impatient = createClient({ baseUrl, fetch: rec.fetch, tokens: tokensOf(admin), retry: { maxDelayMs: 100 } })
    const once = createClient({ baseUrl, fetch: rec.fetch, tokens: tokensOf(admin), retry: { maxAttempts: 1 } })
    await exhaust()
    const started = performance.now()
    for (const sdk of [impatient, once]) {
      const err = await caught(t, sdk.GET('/api/v1/auth/me'))
      t.equal(err.status, 429)
      t.equal(err.code, 'RATE_LIMITED')
    }
    t.ok(performance.now() - started < 900, 'without waiting')
    t.equal(rec.seen.length, 2, 'one request each')
  })
})

t.test('retry bounds and rules, over a stub fetch', async t => {
  const baseUrl = 'http://stub.invalid'
  function stub (answers: Array<[number, Record<string, string>?]>) {
    const sent: Request[] = []
    async function fetch (request: Request) {
      sent.push(request)
      const [status, headers = {}] = answers[Math.min(sent.length, answers.length) - 1]
      const code = status === 429 ? 'RATE_LIMITED' : status === 503 ? 'SERVICE_UNAVAILABLE' : 'OK'
      const body = status < 300 ? { success: true, data: { status: 'ok' } } : { success: false, error: { code, message: code, requestId: 'stub' } }
      return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
    }
    return { fetch, sent }
  }

  const always429 = stub([[429, { 'retry-after': '0' }]])
  const err = await caught(t, createClient({ baseUrl, fetch: always429.fetch }).GET('/api/v1/health'))
  t.equal(err.code, 'RATE_LIMITED')
  t.equal(always429.sent.length, 3, 'maxAttempts defaults to 3 attempts in all')
  const five = stub([[429, { 'retry-after': '0' }]])
  await caught(t, createClient({ baseUrl, fetch: five.fetch, retry: { maxAttempts: 5 } }).GET('/api/v1/health'))
  t.equal(five.sent.length, 5, 'maxAttempts is honoured')

  const get503 = stub([[503, { 'retry-after': '0' }], [200]])
  const ok = await createClient({ baseUrl, fetch: get503.fetch }).GET('/api/v1/health')
  t.equal(ok.response.status, 200, 'a GET is retried after 503 with Retry-After')
  t.equal(get503.sent.length, 2)

  const post503 = stub([[503, { 'retry-after': '0' }], [200]])
  const refused = await caught(t, createClient({ baseUrl, fetch: post503.fetch }).POST('/api/v1/auth/logout', { body: { refreshToken: 'x' } }))
  t.equal(refused.code, 'SERVICE_UNAVAILABLE', 'a POST is not sent again after 503')
  t.equal(post503.sent.length, 1)

  const bare503 = stub([[503], [200]])
  await caught(t, createClient({ baseUrl, fetch: bare503.fetch }).GET('/api/v1/health'))
  t.equal(bare503.sent.length, 1, 'no Retry-After, no retry')

  const off = stub([[429, { 'retry-after': '0' }], [200]])
  await caught(t, createClient({ baseUrl, fetch: off.fetch, retry: false }).GET('/api/v1/health'))
  t.equal(off.sent.length, 1, 'retry: false')

  const controller = new AbortController()
  const slow = stub([[429, { 'retry-after': '5' }], [200]])
  const pending = createClient({ baseUrl, fetch: slow.fetch }).GET('/api/v1/health', { signal: controller.signal })
  setTimeout(() => controller.abort(), 20)
  await t.rejects(pending, { name: 'AbortError' }, 'aborting the signal ends the wait')
  t.equal(slow.sent.length, 1)
})

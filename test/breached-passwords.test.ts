import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { as, assertError, build, createUser, testConfig, uniqueEmail, validateResponses } from './helper.js'
import { outboxToken } from './auth-helpers.js'

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex').toUpperCase()

const BREACHED = 'Breached-Pass-1'
// Its SHA-1 is in the range only as a padding line (count 0): not a breached password.
const PADDED = 'Padded-Pass-2'

/** A Pwned Passwords-like range API on a loopback port: records what it is asked, can be made slow. */
async function startRangeServer (t: Test) {
  const requests: Array<{ url: string, headers: IncomingHttpHeaders }> = []
  const state = { delayMs: 0 }
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers })
    const prefix = (req.url ?? '').split('/').pop() ?? ''
    const lines = ['0018A45C4D1DEF81644B54AB7F969B88D65:3', '00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0']
    for (const [password, count] of [[BREACHED, 42], [PADDED, 0]] as const) {
      const hash = sha1(password)
      // Lower case: the comparison must not depend on the API's case.
      if (hash.startsWith(prefix)) lines.push(`${hash.slice(5).toLowerCase()}:${count}`)
    }
    setTimeout(() => { if (!res.destroyed) res.end(lines.join('\r\n')) }, state.delayMs)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/range`, requests, state }
}

t.test('PASSWORD_BREACH_CHECK_URL: breached passwords are refused; only a 5-hex prefix leaves', async t => {
  const range = await startRangeServer(t)
  const logs: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { raw.push(String(chunk)); logs.push(...String(chunk).split('\n').filter(Boolean).map(line => JSON.parse(line))); done() } })
  const app = await buildApp(testConfig({ passwordBreachCheckUrl: range.url }), { logger: { level: 'warn', stream } })
  await app.ready()
  t.teardown(() => app.close())
  validateResponses(app)
  const register = (password: string, email = uniqueEmail('breach')) =>
    app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password, firstName: 'B', lastName: 'R' } })

  t.test('register: a breached password is 400 on password; a padding line is not a breach', async t => {
    const error = assertError(t, await register(BREACHED), 400, 'VALIDATION_ERROR')
    t.same(error.details?.map(d => d.field), ['password'])
    t.equal((await register(PADDED)).statusCode, 201, 'a count-0 line is padding')
    t.equal((await register('Clean-Pass-3')).statusCode, 201)
  })

  t.test('only five hex characters of the SHA-1 were sent; the range is cached', async t => {
    t.ok(range.requests.length >= 3)
    for (const { url, headers } of range.requests) {
      t.match(url, /^\/range\/[0-9A-F]{5}$/, 'the path is the prefix alone')
      const sent = url + JSON.stringify(headers)
      for (const password of [BREACHED, PADDED, 'Clean-Pass-3']) {
        t.notOk(sent.includes(password) || sent.includes(sha1(password).slice(5)), 'neither the password nor the rest of its hash')
      }
    }
    const before = range.requests.length
    assertError(t, await register(BREACHED), 400, 'VALIDATION_ERROR', 'breached again')
    t.equal((await register(PADDED)).statusCode, 201)
    t.equal(range.requests.length, before, 'answered from the cache')
  })

  t.test('admin create, password change and reset go through the same check', async t => {
    const admin = await createUser(app, { roles: ['admin'] })
    const created = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail('made'), password: BREACHED, firstName: 'M', lastName: 'D' } })
    t.same(assertError(t, created, 400, 'VALIDATION_ERROR').details?.map(d => d.field), ['password'])

    const user = await createUser(app)
    const changed = await as(app, user, { method: 'POST', url: '/api/v1/auth/password/change', payload: { currentPassword: user.password, newPassword: BREACHED } })
    assertError(t, changed, 400, 'VALIDATION_ERROR', 'change')

    await app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email: user.email } })
    const token = await outboxToken(app, user.email, 'password_reset')
    assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/password/reset', payload: { token, password: BREACHED } }), 400, 'VALIDATION_ERROR', 'reset')
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/password/reset', payload: { token, password: 'Fresh-Pass-4' } })).statusCode, 204, 'the link still works')

    const invitee = uniqueEmail('invitee')
    t.equal((await as(app, admin, { method: 'POST', url: '/api/v1/invitations', payload: { email: invitee, firstName: 'I', lastName: 'N' } })).statusCode, 201)
    const invitation = await outboxToken(app, invitee, 'invitation')
    const accept = (password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: invitation, password } })
    assertError(t, await accept(BREACHED), 400, 'VALIDATION_ERROR', 'invitation accept')
    t.equal((await accept('Fresh-Pass-4')).statusCode, 201, 'the invitation still works')
  })

  t.test('a range API slower than 2 s lets the password through, logged and counted', async t => {
    range.state.delayMs = 3000
    t.teardown(() => { range.state.delayMs = 0 })
    const started = Date.now()
    const res = await register('Slow-Range-5')
    const took = Date.now() - started
    t.equal(res.statusCode, 201, 'fail open')
    t.ok(took >= 1900 && took < 2900, `gave up after about 2 s (${took} ms)`)
    const warned = logs.filter(line => line.msg === 'breached-password check failed; password let through')
    t.equal(warned.length, 1)
    t.equal(warned[0].reason, 'timeout')
    const all = raw.join('')
    t.notOk(all.includes('Slow-Range-5') || all.includes(sha1('Slow-Range-5').slice(0, 5)), 'no password or hash in the logs')
    const metrics = await app.inject({ method: 'GET', url: '/metrics' })
    t.match(metrics.body, /password_breach_check_failures_total\{reason="timeout"\} 1/)
  })
})

t.test('without PASSWORD_BREACH_CHECK_URL nothing is checked', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: uniqueEmail('off'), password: BREACHED, firstName: 'B', lastName: 'R' } })
  t.equal(res.statusCode, 201)
})

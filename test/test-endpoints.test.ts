import t from 'tap'
import { as, assertError, build, createUser, PASSWORD, testConfig, uniqueEmail } from './helper.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

const PRODUCTION = { NODE_ENV: 'production', JWT_SECRET: 'k2J9xq7PzL4mW8vR1tY6uB3nC5hG0aSd', MFA_ENCRYPTION_KEY: 'q1Ckf3LJ8m0Zx7VbN2pR5tW9yA4sD6gH0jK3lM8nB1c=' }

t.test('with TEST_ENDPOINTS and the capture transport an admin reads the emails, tokens included', async t => {
  const app = await build(t, {}, { TEST_ENDPOINTS: 'true', EMAIL_TRANSPORT: 'capture' })
  const admin = await createUser(app, { roles: ['admin'] })
  const email = uniqueEmail('Capture')
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'Cap', lastName: 'Ture' } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email } })).statusCode, 202)
  const emails = (to: string, query = '') => as(app, admin, { method: 'GET', url: `/api/v1/test/emails?to=${encodeURIComponent(to)}${query}` })

  const queued = await emails(email.toUpperCase())
  t.equal(queued.statusCode, 200, 'the address is matched case-insensitively')
  const [reset, verify] = queued.json().data
  t.match(reset, { to: email.toLowerCase(), template: 'password_reset', subject: 'Reset your password', sentAt: null, payload: { token: String } })
  t.equal(verify.template, 'verify_email', 'newest first')
  t.ok(reset.text.includes(encodeURIComponent(reset.payload.token)), 'the text holds the link with the token')

  t.ok(await app.emailDelivery.deliverPending() >= 2, 'the capture transport delivers them')
  t.ok((await emails(email)).json().data.every((e: { sentAt: string | null }) => e.sentAt), 'sentAt once delivered')
  t.equal((await emails(email, '&limit=1')).json().data[0].id, reset.id, 'limit')

  const reseted = await app.inject({ method: 'POST', url: '/api/v1/auth/password/reset', payload: { token: reset.payload.token, password: 'Another-Horse-7' } })
  t.equal(reseted.statusCode, 204, 'the captured token works: what a pipeline needs')
  t.same((await emails(uniqueEmail('nobody'))).json().data, [], 'no email: an empty list')

  const user = await createUser(app)
  assertError(t, await as(app, user, { method: 'GET', url: `/api/v1/test/emails?to=${encodeURIComponent(email)}` }), 403, 'FORBIDDEN', 'a plain user')
  assertError(t, await app.inject({ method: 'GET', url: `/api/v1/test/emails?to=${encodeURIComponent(email)}` }), 401, 'UNAUTHORIZED', 'anonymous')
  assertError(t, await emails('not-an-email'), 400, 'VALIDATION_ERROR', 'a malformed address')
  assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/test/emails' }), 400, 'VALIDATION_ERROR', 'no address')
})

t.test('without TEST_ENDPOINTS the route does not exist, and the served document does not list it', async t => {
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'capture' })
  const admin = await createUser(app, { roles: ['admin'] })
  assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/test/emails?to=a%40b.test' }), 404, 'NOT_FOUND')
  t.notOk(app.swagger().paths?.['/api/v1/test/emails'], 'not in /openapi.json')
})

t.test('the committed document lists the route under the test tag', async t => {
  const app = await build(t, {}, { TEST_ENDPOINTS: 'true' })
  const operation = (app.swagger() as any).paths['/api/v1/test/emails'].get
  t.same(operation.tags, ['test'])
  t.ok(Object.keys(operation.responses).includes('403'), 'documents 403')
})

t.test('production refuses test endpoints and the capture transport, with a clear message', async t => {
  t.throws(() => loadConfig({ ...PRODUCTION, TEST_ENDPOINTS: 'true' }), /TEST_ENDPOINTS=true is refused when NODE_ENV=production/)
  t.throws(() => loadConfig({ ...PRODUCTION, EMAIL_TRANSPORT: 'capture' }), /EMAIL_TRANSPORT=capture is refused when NODE_ENV=production/)
  t.equal(loadConfig(PRODUCTION).testEndpoints, false, 'off by default')
  const app = await buildApp(testConfig())
  t.teardown(() => app.close())
  await app.ready()
  t.notOk(app.hasRoute({ method: 'GET', url: '/api/v1/test/emails' }), 'the default app has no test route')
})

import t from 'tap'
import { sql } from 'kysely'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { auditRows, login, outboxRows, register, sha256 } from './auth-helpers.js'

t.test('register creates an active user with role user, unverified, and queues a verification email', async t => {
  const app = await build(t)
  const email = uniqueEmail('Register').replace('register', 'ReGiStEr')
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'Ada', lastName: 'Lovelace' } })
  t.equal(res.statusCode, 201, res.body)
  const user = res.json().data
  t.equal(user.email, email.toLowerCase())
  t.same(user.roles, ['user'])
  t.equal(user.emailVerified, false)
  t.equal(user.status, 'active')
  t.equal(res.headers.location, `/api/v1/users/${user.id}`)
  t.equal(res.headers['cache-control'], 'no-store')
  t.notOk(JSON.stringify(res.json()).includes('password'), 'no password or hash in the response')

  const emails = await outboxRows(app, email, 'verify_email')
  t.equal(emails.length, 1, 'one verification email')
  const token = (emails[0].payload as { token: string }).token
  t.type(token, 'string')
  const stored = await app.database.db.selectFrom('emailVerificationTokens').select(['tokenHash', 'email', 'expiresAt'])
    .where('userId', '=', user.id).execute()
  t.equal(stored.length, 1)
  t.equal(stored[0].tokenHash, sha256(token), 'only the hash of the token is stored')
  t.equal(stored[0].email, email.toLowerCase())
  const ttlHours = (stored[0].expiresAt.getTime() - Date.now()) / 3600_000
  t.ok(ttlHours > 23.9 && ttlHours <= 24, 'the verification token expires in 24 h')

  const audit = await auditRows(app, user.id, 'user.created')
  t.equal(audit.length, 1)
  t.equal(audit[0].actorId, user.id, 'the new user is the actor')
  t.notOk(JSON.stringify(audit[0].changes).includes(PASSWORD), 'no password in the audit row')

  const { token: access } = await login(app, email)
  t.equal((await as(app, { token: access }, { method: 'GET', url: '/api/v1/auth/me' })).json().data.id, user.id)
})

t.test('an email already taken, in any case, is 409 EMAIL_TAKEN and queues nothing', async t => {
  const app = await build(t)
  const { email } = await register(app)
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: email.toUpperCase(), password: PASSWORD, firstName: 'A', lastName: 'B' } })
  t.equal(res.statusCode, 409)
  t.equal(res.json().error.code, 'EMAIL_TAKEN')
  t.equal((await outboxRows(app, email, 'verify_email')).length, 1, 'still only the first verification email')
})

t.test('two registrations of one email racing: one 201, one 409', async t => {
  const app = await build(t)
  const email = uniqueEmail('race')
  const results = await Promise.all([1, 2].map(() =>
    app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'A', lastName: 'B' } })))
  t.same(results.map(r => r.statusCode).sort(), [201, 409])
})

t.test('the password policy, common passwords included, is enforced with a password detail', async t => {
  const app = await build(t)
  const email = uniqueEmail('policy')
  const cases: Array<[string, string]> = [
    ['Sh0rt', 'must be 8 to 128 characters long'],
    [`Aa1${'x'.repeat(126)}`, 'must be 8 to 128 characters long'],
    ['alllower123', 'must contain an upper-case letter'],
    ['ALLUPPER123', 'must contain a lower-case letter'],
    ['NoDigitsHere', 'must contain a digit'],
    [email.toUpperCase().replace('POLICY', 'Policy1'), 'must not be the email address'],
    ['Password1', 'is too common'],
    ['Qwerty123', 'is too common'],
    ['1Q2W3E4r', 'is too common']
  ]
  for (const [password, message] of cases) {
    const body = { email: password.includes('@') ? password.toLowerCase() : email, password, firstName: 'A', lastName: 'B' }
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: body })
    t.equal(res.statusCode, 400, `${password}: 400`)
    t.equal(res.json().error.code, 'VALIDATION_ERROR')
    t.ok(res.json().error.details.some((d: { field: string, message: string }) => d.field === 'password' && d.message === message), `${password}: ${message}`)
  }
  const none = await app.database.db.selectFrom('users').select('id').where(sql`lower(email)`, '=', email).execute()
  t.equal(none.length, 0, 'no user was created')
})

t.test('creating a user with a common password through the users API is refused too', async t => {
  const app = await build(t)
  const admin = await createUser(app, { roles: ['admin'] })
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail('common'), password: 'Iloveyou1', firstName: 'A', lastName: 'B' } })
  t.equal(res.statusCode, 400, res.body)
  t.same(res.json().error.details, [{ field: 'password', message: 'is too common' }])
})

t.test('register refuses unknown properties (no mass assignment of roles or status)', async t => {
  const app = await build(t)
  for (const extra of [{ roles: ['admin'] }, { status: 'active' }, { emailVerified: true }]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: uniqueEmail('mass'), password: PASSWORD, firstName: 'A', lastName: 'B', ...extra } })
    t.equal(res.statusCode, 400, JSON.stringify(extra))
    t.equal(res.json().error.code, 'VALIDATION_ERROR')
  }
})

t.test('the user and its verification email are written together: when the email cannot be queued, no user exists', async t => {
  const app = await build(t)
  const db = app.database.db
  // Only this test's address fails, so other tests sharing a real database are not affected.
  const marker = `outbox-fail-${Date.now().toString(36)}`
  const fn = `test_fail_${marker.replace(/-/g, '_')}`
  await sql.raw(`create function ${fn}() returns trigger language plpgsql as $$ begin raise exception 'outbox down'; end $$;
    create trigger ${fn} before insert on email_outbox for each row when (new.to_address like '${marker}%') execute function ${fn}();`).execute(db)
  t.teardown(async () => {
    await sql.raw(`drop trigger if exists ${fn} on email_outbox; drop function if exists ${fn}();`).execute(db)
  })
  const email = `${marker}@example.test`
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'A', lastName: 'B' } })
  t.equal(res.statusCode, 500)
  t.notOk(res.body.includes('outbox down'), 'no internals in the 500')
  const rows = await db.selectFrom('users').select('id').where('email', '=', email).execute()
  t.equal(rows.length, 0, 'the user was rolled back with the email')
})

t.test('with REQUIRE_EMAIL_VERIFICATION a registered user is pending and cannot log in until verified', async t => {
  const app = await build(t, { requireEmailVerification: true })
  const { user, email, verifyToken } = await register(app)
  t.equal(user.status, 'pending')
  t.equal(user.emailVerified, false)

  const denied = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } })
  t.equal(denied.statusCode, 403)
  t.equal(denied.json().error.code, 'FORBIDDEN')

  const wrong = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: 'Wrong-Password-1' } })
  t.equal(wrong.statusCode, 401, 'a wrong password is still 401, not 403: the 403 needs the right password')

  const verified = await app.inject({ method: 'POST', url: '/api/v1/auth/email/verify', payload: { token: verifyToken } })
  t.equal(verified.statusCode, 204)
  const { body } = await login(app, email)
  t.equal(body.data.user.status, 'active')
  t.equal(body.data.user.emailVerified, true)
})

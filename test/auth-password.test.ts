import t from 'tap'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { auditRows, login, me, outboxRows, outboxToken, refresh, register, sha256 } from './auth-helpers.js'

const NEW_PASSWORD = 'Brand-New-Secret-7'

t.test('forgot, reset and change password', async t => {
  const app = await build(t)
  const forgot = (email: string) => app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email } })
  const reset = (token: string, password = NEW_PASSWORD) =>
    app.inject({ method: 'POST', url: '/api/v1/auth/password/reset', payload: { token, password } })
  const loginStatus = async (email: string, password: string) =>
    (await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })).statusCode

  t.test('forgot answers the same 202 whether or not the email exists, and queues a reset only when it does', async t => {
    const user = await createUser(app)
    const unknown = uniqueEmail('nobody')
    const known = await forgot(user.email.toUpperCase())
    const missing = await forgot(unknown)
    t.equal(known.statusCode, 202)
    t.equal(missing.statusCode, 202)
    t.same(known.json(), missing.json(), 'identical bodies')
    t.equal(known.json().success, true)
    t.equal((await outboxRows(app, user.email, 'password_reset')).length, 1)
    t.equal((await outboxRows(app, unknown, 'password_reset')).length, 0)

    const token = await outboxToken(app, user.email, 'password_reset')
    const stored = await app.database.db.selectFrom('passwordResetTokens').select(['tokenHash', 'expiresAt'])
      .where('userId', '=', user.id).execute()
    t.equal(stored.length, 1)
    t.equal(stored[0].tokenHash, sha256(token), 'only the hash is stored')
    const ttlMin = (stored[0].expiresAt.getTime() - Date.now()) / 60_000
    t.ok(ttlMin > 59 && ttlMin <= 60, 'expires in 1 h')
  })

  t.test('forgot queues nothing for a suspended or deleted account, with the same answer', async t => {
    const suspended = await createUser(app)
    await app.database.db.updateTable('users').set({ status: 'suspended' }).where('id', '=', suspended.id).execute()
    const res = await forgot(suspended.email)
    t.equal(res.statusCode, 202)
    t.equal((await outboxRows(app, suspended.email, 'password_reset')).length, 0)
    t.equal((await forgot('not-an-email')).statusCode, 400)
  })

  t.test('reset sets the password once, revokes every login and is audited', async t => {
    const user = await createUser(app)
    const second = await login(app, user.email)
    await forgot(user.email)
    const token = await outboxToken(app, user.email, 'password_reset')

    const res = await reset(token)
    t.equal(res.statusCode, 204)
    t.equal((await me(app, user.token)).statusCode, 401, 'every login is revoked')
    t.equal((await me(app, second.token)).statusCode, 401)
    t.equal((await refresh(app, second.refreshToken)).statusCode, 401)
    t.equal(await loginStatus(user.email, PASSWORD), 401, 'the old password is gone')
    t.equal(await loginStatus(user.email, NEW_PASSWORD), 200, 'the new one works')

    const again = await reset(token, 'Another-Secret-8')
    t.equal(again.statusCode, 400, 'single use')
    t.equal(again.json().error.code, 'INVALID_TOKEN')
    t.equal(await loginStatus(user.email, NEW_PASSWORD), 200)

    const audit = await auditRows(app, user.id, 'auth.password_reset')
    t.equal(audit.length, 1)
    t.notOk(JSON.stringify(audit[0]).includes(NEW_PASSWORD) || JSON.stringify(audit[0]).includes(token), 'no secret in the audit row')
  })

  t.test('a reset password must meet the policy; a refused one leaves the token usable', async t => {
    const user = await createUser(app)
    await forgot(user.email)
    const token = await outboxToken(app, user.email, 'password_reset')
    for (const [password, message] of [['short1A', 'must be 8 to 128 characters long'], ['Password123', 'is too common'], [user.email, 'must not be the email address']]) {
      const res = await reset(token, password)
      t.equal(res.statusCode, 400, password)
      t.equal(res.json().error.code, 'VALIDATION_ERROR')
      t.ok(res.json().error.details.some((d: { field: string, message: string }) => d.field === 'password' && d.message === message), message)
    }
    t.equal((await reset(token)).statusCode, 204)
  })

  t.test('unknown, expired, or other-purpose tokens are 400 INVALID_TOKEN', async t => {
    const user = await createUser(app)
    await forgot(user.email)
    const token = await outboxToken(app, user.email, 'password_reset')
    await app.database.db.updateTable('passwordResetTokens').set({ expiresAt: new Date(Date.now() - 1000) })
      .where('tokenHash', '=', sha256(token)).execute()
    const expired = await reset(token)
    t.equal(expired.statusCode, 400)
    t.equal(expired.json().error.code, 'INVALID_TOKEN')

    t.equal((await reset('made-up-token')).json().error.code, 'INVALID_TOKEN')
    const { verifyToken } = await register(app)
    t.equal((await reset(verifyToken)).json().error.code, 'INVALID_TOKEN', 'a verification token is not a reset token')
    t.equal((await reset(user.refreshToken)).json().error.code, 'INVALID_TOKEN', 'nor is a refresh token')
    t.equal(await loginStatus(user.email, PASSWORD), 200, 'nothing changed')
  })

  t.test('two resets racing with one token: exactly one succeeds', async t => {
    const user = await createUser(app)
    await forgot(user.email)
    const token = await outboxToken(app, user.email, 'password_reset')
    const results = await Promise.all(['First-Racer-11', 'Second-Racer-22', 'Third-Racer-33'].map(p => reset(token, p)))
    t.same(results.map(r => r.statusCode).sort(), [204, 400, 400])
  })

  t.test('change: wrong current password is 401, the policy applies, other logins are revoked', async t => {
    const user = await createUser(app)
    const other = await login(app, user.email)
    await forgot(user.email)
    const pendingReset = await outboxToken(app, user.email, 'password_reset')
    const change = (body: Record<string, unknown>, who: { token: string } | null = user) =>
      as(app, who ?? undefined, { method: 'POST', url: '/api/v1/auth/password/change', payload: body })

    t.equal((await change({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, null)).statusCode, 401, 'needs a token')
    const wrong = await change({ currentPassword: 'Not-The-Password-1', newPassword: NEW_PASSWORD })
    t.equal(wrong.statusCode, 401)
    t.equal(wrong.json().error.code, 'INVALID_CREDENTIALS')
    const weak = await change({ currentPassword: PASSWORD, newPassword: 'Welcome1' })
    t.equal(weak.statusCode, 400)
    t.same(weak.json().error.details, [{ field: 'password', message: 'is too common' }])
    t.equal((await change({ currentPassword: PASSWORD })).statusCode, 400)

    const res = await change({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD })
    t.equal(res.statusCode, 204)
    t.equal((await me(app, user.token)).statusCode, 200, 'the current login goes on')
    t.equal((await me(app, other.token)).statusCode, 401, 'every other login is revoked')
    t.equal((await refresh(app, other.refreshToken)).statusCode, 401)
    t.equal(await loginStatus(user.email, NEW_PASSWORD), 200)
    t.equal(await loginStatus(user.email, PASSWORD), 401)
    t.equal((await reset(pendingReset, 'Sneaky-Reset-99')).json().error.code, 'INVALID_TOKEN', 'a reset link sent before the change is dead')
    t.equal((await auditRows(app, user.id, 'auth.password_changed')).length, 1)
  })
})

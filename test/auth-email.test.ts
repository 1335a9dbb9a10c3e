import t from 'tap'
import { as, build, uniqueEmail } from './helper.js'
import { auditRows, login, outboxRows, outboxToken, register, sha256 } from './auth-helpers.js'

t.test('email verification', async t => {
  const app = await build(t)
  const verify = (token: string) => app.inject({ method: 'POST', url: '/api/v1/auth/email/verify', payload: { token } })
  const meOf = async (token: string) => (await as(app, { token }, { method: 'GET', url: '/api/v1/auth/me' })).json().data

  t.test('a verification token verifies the email once', async t => {
    const { user, email, verifyToken } = await register(app)
    const res = await verify(verifyToken)
    t.equal(res.statusCode, 204)
    t.equal(res.headers['cache-control'], 'no-store')
    const session = await login(app, email)
    t.equal((await meOf(session.token)).emailVerified, true)
    t.equal((await auditRows(app, user.id, 'user.email_verified')).length, 1)

    const again = await verify(verifyToken)
    t.equal(again.statusCode, 400, 'single use')
    t.equal(again.json().error.code, 'INVALID_TOKEN')
  })

  t.test('expired, unknown and other-purpose tokens are 400 INVALID_TOKEN', async t => {
    const { email, verifyToken } = await register(app)
    await app.database.db.updateTable('emailVerificationTokens').set({ expiresAt: new Date(Date.now() - 1000) })
      .where('tokenHash', '=', sha256(verifyToken)).execute()
    const expired = await verify(verifyToken)
    t.equal(expired.statusCode, 400)
    t.equal(expired.json().error.code, 'INVALID_TOKEN')
    t.equal((await verify('made-up')).json().error.code, 'INVALID_TOKEN')

    await app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email } })
    const resetToken = await outboxToken(app, email, 'password_reset')
    t.equal((await verify(resetToken)).json().error.code, 'INVALID_TOKEN', 'a reset token does not verify an email')
    const session = await login(app, email)
    t.equal((await verify(session.refreshToken)).json().error.code, 'INVALID_TOKEN', 'nor does a refresh token')
    t.equal((await meOf(session.token)).emailVerified, false, 'still unverified')
  })

  t.test('a token for an address the user no longer has is refused; the new address\'s token works', async t => {
    const { user, email, verifyToken } = await register(app)
    const session = await login(app, email)
    const newEmail = uniqueEmail('moved')
    const patched = await as(app, session, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { email: newEmail } })
    t.equal(patched.statusCode, 200, patched.body)

    const old = await verify(verifyToken)
    t.equal(old.statusCode, 400)
    t.equal(old.json().error.code, 'INVALID_TOKEN')
    t.equal((await meOf(session.token)).emailVerified, false)

    const fresh = await outboxToken(app, newEmail, 'verify_email')
    t.equal((await verify(fresh)).statusCode, 204)
    t.equal((await meOf(session.token)).emailVerified, true)
  })

  t.test('resend queues a new token for an unverified email, nothing for a verified one; both 202', async t => {
    const { email, verifyToken } = await register(app)
    const session = await login(app, email)
    const resend = () => as(app, session, { method: 'POST', url: '/api/v1/auth/email/verify/resend' })

    const first = await resend()
    t.equal(first.statusCode, 202)
    t.equal(first.json().success, true)
    t.equal((await outboxRows(app, email, 'verify_email')).length, 2)
    const newest = await outboxToken(app, email, 'verify_email')
    t.not(newest, verifyToken)
    t.equal((await verify(newest)).statusCode, 204)

    const second = await resend()
    t.equal(second.statusCode, 202)
    t.same(second.json(), first.json(), 'the same answer')
    t.equal((await outboxRows(app, email, 'verify_email')).length, 2, 'nothing queued once verified')

    t.equal((await as(app, undefined, { method: 'POST', url: '/api/v1/auth/email/verify/resend' })).statusCode, 401)
  })
})

t.test('with REQUIRE_EMAIL_VERIFICATION, verifying turns a pending account active', async t => {
  const app = await build(t, { requireEmailVerification: true })
  const { user, email, verifyToken } = await register(app)
  t.equal(user.status, 'pending')
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: 'Correct-Horse-9' } })).statusCode, 403)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/email/verify', payload: { token: verifyToken } })).statusCode, 204)
  const row = await app.database.db.selectFrom('users').select(['status', 'emailVerified']).where('id', '=', user.id).executeTakeFirstOrThrow()
  t.same(row, { status: 'active', emailVerified: true })
  const audit = await auditRows(app, user.id, 'user.email_verified')
  t.same(audit[0].changes, { emailVerified: { from: false, to: true }, status: { from: 'pending', to: 'active' } })
})

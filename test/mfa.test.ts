import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { generate } from 'otplib'
import { as, assertError, build, createUser, PASSWORD, type TestUser } from './helper.js'
import { auditRows, me, refresh } from './auth-helpers.js'
import { hashToken } from '../src/lib/tokens.js'

/**
 * TOTP, recovery codes and the two-step login, over HTTP. Codes are computed here by otplib from
 * the secret the setup answered, at real time steps: `code(secret, -1)` is the previous 30 s step,
 * which the server still accepts (one step of drift either way). Each test starts early in a step
 * (waitForFreshStep), so its steps -1, 0 and +1 stay in the window while it runs.
 */

const PERIOD = 30
const stepNow = () => Math.floor(Date.now() / 1000 / PERIOD)
const code = (secret: string, offset = 0) => generate({ secret, epoch: (stepNow() + offset) * PERIOD + 1 })
async function waitForFreshStep () {
  const left = PERIOD - (Date.now() / 1000) % PERIOD
  if (left < 12) await new Promise(resolve => setTimeout(resolve, left * 1000 + 50))
}

const decodeJwt = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
const loginReq = (email: string, password = PASSWORD) => ({ method: 'POST' as const, url: '/api/v1/auth/login', payload: { email, password } })
const verifyReq = (payload: Record<string, unknown>) => ({ method: 'POST' as const, url: '/api/v1/auth/mfa/verify', payload })

/** Sets up and confirms TOTP for the user (with the previous step's code); returns the secret and the recovery codes. */
async function enrol (t: Test, app: FastifyInstance, user: TestUser) {
  const setup = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' })
  t.equal(setup.statusCode, 200, 'setup')
  const { secret } = setup.json().data as { secret: string }
  const confirm = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await code(secret, -1) } })
  t.equal(confirm.statusCode, 200, 'confirm')
  return { secret, recoveryCodes: confirm.json().data.recoveryCodes as string[] }
}

async function mfaToken (t: Test, app: FastifyInstance, email: string) {
  const res = await app.inject(loginReq(email))
  t.equal(res.statusCode, 200, 'the password step answers 200')
  t.equal(res.json().data.mfaRequired, true, 'mfaRequired')
  return res.json().data.mfaToken as string
}

t.test('TOTP and the two-step login', async t => {
  const app = await build(t, {}, { LOGIN_MAX_FAILURES: '3', LOGIN_LOCK_WINDOW: '10m' })
  const db = app.database.db

  t.test('setup, confirm, status, then a two-step login with amr', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    t.same((await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data, { totp: false, recoveryCodesLeft: 0, passkeys: [] }, 'nothing enrolled')
    t.same(decodeJwt(user.token).amr, ['pwd'], 'a password login carries amr ["pwd"]')

    const setup = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' })
    t.equal(setup.statusCode, 200)
    const { secret, otpauthUrl, qrSvg } = setup.json().data
    t.match(secret, /^[A-Z2-7]{32}$/, 'a base32 secret of 160 bits')
    const uri = new URL(otpauthUrl)
    t.equal(uri.protocol, 'otpauth:')
    t.equal(uri.searchParams.get('secret'), secret)
    t.ok(decodeURIComponent(uri.pathname).includes(user.email), 'the label names the account')
    t.match(qrSvg, /^<svg[\s\S]*<\/svg>\s*$/, 'the QR code is an SVG')
    const stored = await db.selectFrom('userTotp').selectAll().where('userId', '=', user.id).executeTakeFirstOrThrow()
    t.notOk(stored.secretSealed.includes(secret), 'the secret is stored sealed')
    t.equal(stored.confirmedAt, null, 'not active until confirmed')
    t.equal((await app.inject(loginReq(user.email))).json().data.mfaRequired, undefined, 'an unconfirmed setup does not change the login')

    const wrong = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: String((Number(await code(secret)) + 1) % 1_000_000).padStart(6, '0') } })
    const error = assertError(t, wrong, 400, 'VALIDATION_ERROR', 'a wrong confirmation code')
    t.equal(error.details?.[0]?.field, 'code')
    const confirm = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await code(secret, -1) } })
    t.equal(confirm.statusCode, 200)
    const { recoveryCodes } = confirm.json().data
    t.equal(recoveryCodes.length, 10, 'ten recovery codes')
    t.equal(new Set(recoveryCodes).size, 10, 'all different')
    const hashes = await db.selectFrom('userRecoveryCodes').select('codeHash').where('userId', '=', user.id).execute()
    t.equal(hashes.length, 10)
    t.notOk(hashes.some(h => recoveryCodes.some((c: string) => h.codeHash.includes(c) || h.codeHash === hashToken(c))), 'stored as keyed hashes only')
    t.same((await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data, { totp: true, recoveryCodesLeft: 10, passkeys: [] })
    assertError(t, await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' }), 409, 'CONFLICT', 'setup while enabled')
    assertError(t, await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await code(secret) } }), 409, 'CONFLICT', 'confirm while enabled')
    t.equal((await auditRows(app, user.id, 'auth.mfa_enabled')).length, 1, 'auth.mfa_enabled')

    const first = await app.inject(loginReq(user.email))
    t.equal(first.statusCode, 200)
    const challenge = first.json().data
    t.same(Object.keys(challenge).sort(), ['expiresIn', 'methods', 'mfaRequired', 'mfaToken'], 'the challenge, no tokens')
    t.equal(challenge.expiresIn, 300, 'the mfaToken lives 5 minutes')
    t.same(challenge.methods, ['totp', 'recovery_code'])
    const stale = await app.inject(verifyReq({ mfaToken: challenge.mfaToken, code: await code(secret, -1) }))
    assertError(t, stale, 401, 'INVALID_MFA_CODE', 'the code used to confirm cannot be used again')
    const verified = await app.inject(verifyReq({ mfaToken: challenge.mfaToken, code: await code(secret) }))
    t.equal(verified.statusCode, 200, 'the second step answers the login')
    const pair = verified.json().data
    t.equal(pair.tokenType, 'Bearer')
    t.equal(pair.user.id, user.id)
    t.same(decodeJwt(pair.accessToken).amr, ['pwd', 'otp'], 'amr ["pwd","otp"]')
    t.equal((await me(app, pair.accessToken)).statusCode, 200, 'the access token works')
    const refreshed = await refresh(app, pair.refreshToken)
    t.same(decodeJwt(refreshed.json().data.accessToken).amr, ['pwd', 'otp'], 'a refresh keeps the login\'s amr')
    const logins = await auditRows(app, user.id, 'auth.login')
    t.same(logins.at(-1)?.changes, { method: 'password', amr: ['pwd', 'otp'], secondFactor: 'totp' }, 'the auth.login row says how')

    t.test('the same code is not accepted twice, nor the same mfaToken', async t => {
      assertError(t, await app.inject(verifyReq({ mfaToken: challenge.mfaToken, code: await code(secret, 1) })), 401, 'UNAUTHORIZED', 'a spent mfaToken')
      const again = await mfaToken(t, app, user.email)
      assertError(t, await app.inject(verifyReq({ mfaToken: again, code: await code(secret) })), 401, 'INVALID_MFA_CODE', 'a replayed code')
      t.equal((await app.inject(verifyReq({ mfaToken: again, code: await code(secret, 1) }))).statusCode, 200, 'the next step\'s code works, with the same mfaToken')
    })
  })

  t.test('concurrent verifications: one code, one mfaToken, one login', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret } = await enrol(t, app, user)
    const token = await mfaToken(t, app, user.email)
    const current = await code(secret)
    const answers = await Promise.all(Array.from({ length: 5 }, () => app.inject(verifyReq({ mfaToken: token, code: current }))))
    t.same(answers.map(a => a.statusCode).sort(), [200, 401, 401, 401, 401], 'exactly one succeeds')
    t.same(answers.filter(a => a.statusCode === 401).map(a => a.json().error.code), Array(4).fill('UNAUTHORIZED'), 'the others find the mfaToken spent: no wrong code counted')
    const [tokenA, tokenB] = [await mfaToken(t, app, user.email), await mfaToken(t, app, user.email)]
    const next = await code(secret, 1)
    const pair = await Promise.all([tokenA, tokenB].map(mfaToken => app.inject(verifyReq({ mfaToken, code: next }))))
    t.same(pair.map(a => a.statusCode).sort(), [200, 401], 'one code in two logins at once: one succeeds')
  })

  t.test('mfaToken expiry', async t => {
    await waitForFreshStep()
    const quick = await build(t, { mfaTokenTtlSec: 1 })
    const user = await createUser(quick)
    const { secret } = await enrol(t, quick, user)
    const res = await quick.inject(loginReq(user.email))
    t.equal(res.json().data.expiresIn, 1)
    await new Promise(resolve => setTimeout(resolve, 1600))
    assertError(t, await quick.inject(verifyReq({ mfaToken: res.json().data.mfaToken, code: await code(secret) })), 401, 'UNAUTHORIZED', 'an expired mfaToken')
    assertError(t, await quick.inject(verifyReq({ mfaToken: 'bm90LWEtdG9rZW4', code: await code(secret) })), 401, 'UNAUTHORIZED', 'an unknown mfaToken')
  })

  t.test('wrong codes count toward the lockout; the right password never clears them', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret } = await enrol(t, app, user)
    const wrongCode = async () => String((Number(await code(secret)) + 500_000) % 1_000_000).padStart(6, '0')
    let token = await mfaToken(t, app, user.email)
    assertError(t, await app.inject(verifyReq({ mfaToken: token, code: await wrongCode() })), 401, 'INVALID_MFA_CODE', 'wrong code 1')
    assertError(t, await app.inject(verifyReq({ mfaToken: token, code: await wrongCode() })), 401, 'INVALID_MFA_CODE', 'wrong code 2')
    token = await mfaToken(t, app, user.email)
    assertError(t, await app.inject(verifyReq({ mfaToken: token, recoveryCode: 'aaaaa-bbbbb' })), 401, 'INVALID_MFA_CODE', 'wrong recovery code: failure 3')
    const locked = await app.inject(verifyReq({ mfaToken: token, code: await code(secret) }))
    assertError(t, locked, 429, 'RATE_LIMITED', 'locked at LOGIN_MAX_FAILURES: even the right code')
    t.ok(Number(locked.headers['retry-after']) > 0, 'Retry-After')
    assertError(t, await app.inject(loginReq(user.email)), 429, 'RATE_LIMITED', 'and the password step too')
    const failed = await auditRows(app, user.id, 'auth.mfa_failed')
    t.equal(failed.length, 3, 'an auth.mfa_failed row per wrong code')
    t.same(failed.map(row => (row.changes as { method: string }).method), ['totp', 'totp', 'recovery_code'])
  })

  t.test('a right code clears the count', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret } = await enrol(t, app, user)
    // A code of none of the steps in the window.
    const wrongCode = async () => { const near = await Promise.all([-1, 0, 1].map(o => code(secret, o))); return ['000000', '111111', '222222', '333333'].find(c => !near.includes(c))! }
    const token = await mfaToken(t, app, user.email)
    for (let i = 0; i < 2; i++) assertError(t, await app.inject(verifyReq({ mfaToken: token, code: await wrongCode() })), 401, 'INVALID_MFA_CODE')
    t.equal((await app.inject(verifyReq({ mfaToken: token, code: await code(secret) }))).statusCode, 200)
    const again = await mfaToken(t, app, user.email)
    for (let i = 0; i < 2; i++) assertError(t, await app.inject(verifyReq({ mfaToken: again, code: await wrongCode() })), 401, 'INVALID_MFA_CODE')
    t.equal((await app.inject(verifyReq({ mfaToken: again, code: await code(secret, 1) }))).statusCode, 200, 'two more failures did not lock')
  })

  t.test('recovery codes: each works once; regenerating replaces them', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret, recoveryCodes } = await enrol(t, app, user)
    const token = await mfaToken(t, app, user.email)
    const used = await app.inject(verifyReq({ mfaToken: token, recoveryCode: ` ${recoveryCodes[0].toUpperCase()} ` }))
    t.equal(used.statusCode, 200, 'a recovery code completes the login (case and spaces do not matter)')
    t.same(decodeJwt(used.json().data.accessToken).amr, ['pwd', 'otp'])
    assertError(t, await app.inject(verifyReq({ mfaToken: await mfaToken(t, app, user.email), recoveryCode: recoveryCodes[0] })), 401, 'INVALID_MFA_CODE', 'not twice')
    t.equal((await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data.recoveryCodesLeft, 9)

    const concurrent = await Promise.all([1, 2].map(async () => app.inject(verifyReq({ mfaToken: await mfaToken(t, app, user.email), recoveryCode: recoveryCodes[1] }))))
    t.same(concurrent.map(a => a.statusCode).sort(), [200, 401], 'two logins racing with one recovery code: one wins')

    assertError(t, await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/recovery-codes', payload: { code: 'zzzzz-zzzzz' } }), 401, 'INVALID_MFA_CODE', 'regenerate needs a right code')
    const regenerated = await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/recovery-codes', payload: { code: await code(secret) } })
    t.equal(regenerated.statusCode, 200)
    const fresh = regenerated.json().data.recoveryCodes as string[]
    t.equal(fresh.length, 10)
    t.equal((await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data.recoveryCodesLeft, 10)
    assertError(t, await app.inject(verifyReq({ mfaToken: await mfaToken(t, app, user.email), recoveryCode: recoveryCodes[2] })), 401, 'INVALID_MFA_CODE', 'an old code stops working')
    t.equal((await app.inject(verifyReq({ mfaToken: await mfaToken(t, app, user.email), recoveryCode: fresh[0] }))).statusCode, 200, 'a new one works')
    t.equal((await auditRows(app, user.id, 'auth.recovery_codes_regenerated')).length, 1)
  })

  t.test('disable with a TOTP or a recovery code', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret, recoveryCodes } = await enrol(t, app, user)
    assertError(t, await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/disable', payload: { code: await code(secret, -1) } }), 401, 'INVALID_MFA_CODE', 'a spent code')
    t.equal((await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/disable', payload: { code: recoveryCodes[3] } })).statusCode, 204)
    t.same((await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data, { totp: false, recoveryCodesLeft: 0, passkeys: [] })
    const plain = await app.inject(loginReq(user.email))
    t.ok(plain.json().data.accessToken, 'the password alone logs in again')
    assertError(t, await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/disable', payload: { code: await code(secret) } }), 409, 'CONFLICT', 'nothing to disable')
    t.equal((await auditRows(app, user.id, 'auth.mfa_disabled')).length, 1)

    const again = await enrol(t, app, user)
    t.equal((await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/disable', payload: { code: await code(again.secret) } })).statusCode, 204, 'and with a TOTP code')
  })

  t.test('verify input: exactly one factor', async t => {
    const user = await createUser(app)
    const token = hashToken(user.email) // any well-formed token
    assertError(t, await app.inject(verifyReq({ mfaToken: token })), 400, 'VALIDATION_ERROR', 'no factor')
    assertError(t, await app.inject(verifyReq({ mfaToken: token, code: '123456', recoveryCode: 'aaaaa-bbbbb' })), 400, 'VALIDATION_ERROR', 'two factors')
    assertError(t, await app.inject(verifyReq({ mfaToken: token, code: '123456', extra: 1 })), 400, 'VALIDATION_ERROR', 'unknown property')
    assertError(t, await app.inject({ method: 'GET', url: '/api/v1/auth/mfa' }), 401, 'UNAUTHORIZED', 'status needs a login')
  })

  t.test('an administrator resets another user\'s factors and ends its logins', async t => {
    await waitForFreshStep()
    const admin = await createUser(app, { roles: ['admin'] })
    const plain = await createUser(app)
    const user = await createUser(app)
    await enrol(t, app, user)
    assertError(t, await as(app, plain, { method: 'POST', url: `/api/v1/users/${user.id}/mfa/reset` }), 403, 'FORBIDDEN', 'needs users:write')
    assertError(t, await as(app, admin, { method: 'POST', url: `/api/v1/users/${admin.id}/mfa/reset` }), 403, 'FORBIDDEN', 'not on oneself')
    assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users/00000000-0000-4000-8000-000000000000/mfa/reset' }), 404, 'NOT_FOUND')
    assertError(t, await as(app, admin, { method: 'POST', url: '/api/v1/users/not-a-uuid/mfa/reset' }), 400, 'VALIDATION_ERROR')
    const pending = await mfaToken(t, app, user.email)
    t.equal((await me(app, user.token)).statusCode, 200, 'the user is logged in')
    t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/mfa/reset` })).statusCode, 204)
    t.equal((await me(app, user.token)).statusCode, 401, 'its access token stops working')
    t.equal((await refresh(app, user.refreshToken)).statusCode, 401, 'and its refresh token')
    assertError(t, await app.inject(verifyReq({ mfaToken: pending, recoveryCode: 'aaaaa-bbbbb' })), 401, 'UNAUTHORIZED', 'a pending second step ends too')
    const after = await app.inject(loginReq(user.email))
    t.ok(after.json().data.accessToken, 'the password alone logs in')
    const [row] = await auditRows(app, user.id, 'user.mfa_reset')
    t.equal(row?.actorId, admin.id)
    t.match(row?.changes, { totp: true, recoveryCodes: 10 })
  })

  t.test('the GDPR export says whether TOTP is on, never the secret', async t => {
    await waitForFreshStep()
    const user = await createUser(app)
    const { secret, recoveryCodes } = await enrol(t, app, user)
    const exported = await as(app, user, { method: 'GET', url: `/api/v1/users/${user.id}/export` })
    t.equal(exported.statusCode, 200)
    t.same(exported.json().data.mfa, { totp: true, recoveryCodesLeft: 10 })
    t.notOk(exported.body.includes(secret), 'no secret')
    t.notOk(recoveryCodes.some(c => exported.body.includes(c)), 'no recovery code')
  })

  t.test('metrics count logins that await their second factor', async t => {
    const user = await createUser(app)
    await enrol(t, app, user)
    await mfaToken(t, app, user.email)
    const metrics = await app.inject({ method: 'GET', url: '/metrics' })
    t.match(metrics.body, /logins_total\{outcome="mfa_required"\} [1-9]/)
  })
})

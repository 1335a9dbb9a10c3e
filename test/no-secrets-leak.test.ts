import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { FastifyRequest, InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildApp, loggerOptions } from '../src/app.js'
import { bufferedStdout } from '../src/lib/log-stream.js'
import { hashToken } from '../src/lib/tokens.js'
import { createUser, testConfig, uniqueEmail, validateResponses } from './helper.js'
import { forgeJwt } from './auth-helpers.js'
import { generate } from 'otplib'
import { startOidcProvider } from './oidc-providers.js'
import { APP, CLIENT, PUBLIC_URL, callbackOf, oidcFlow, redirectParams, throughProvider } from './oidc-flow.js'
import { ORIGIN, RP_ID, SoftAuthenticator } from './soft-authenticator.js'

/**
 * One complete life of an account, driven over HTTP, with every response, log line and audit row
 * searched for the passwords, tokens and hashes it used. The log is as verbose as an operator
 * debugging could make it (level trace, request headers in the request line, every parsed body
 * logged): what keeps secrets out of it must be the app's own redaction, not the log's quietness.
 * The life includes a sign-in with a real OpenID provider and a passkey registered and used.
 */

type Kind = 'password' | 'access token' | 'refresh token' | 'verify token' | 'reset token' | 'token hash' | 'password hash' | 'bogus credential' |
  'totp secret' | 'sealed secret' | 'totp code' | 'recovery code' | 'recovery code hash' | 'mfa token' | 'encryption key' | 'invitation token' |
  'oidc exchange code' | 'provider authorization code' | 'oidc state' | 'oidc nonce' | 'pkce code verifier' | 'oidc flow cookie' | 'oidc client secret' |
  'provider id token' | 'provider access token' | 'passkey challenge' | 'passkey signature' | 'passkey public key'

const lines: string[] = []
const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done() } })
const idp = await startOidcProvider({ ...CLIENT, redirectUri: callbackOf('idp') })
t.teardown(() => idp.close())
const config = testConfig({}, {
  EMAIL_TRANSPORT: 'log',
  OIDC_PROVIDERS: JSON.stringify([{ name: 'idp', issuer: idp.issuer, ...CLIENT }]),
  OIDC_REDIRECT_URIS: APP,
  PUBLIC_URL,
  WEBAUTHN_RP_ID: RP_ID,
  WEBAUTHN_ORIGINS: ORIGIN
})
const stdout = bufferedStdout()
t.teardown(() => stdout.close())
const base = loggerOptions(config, stdout)
const app = await buildApp(config, {
  logger: {
    ...(typeof base === 'object' ? base : {}),
    level: 'trace',
    stream,
    // Fastify's own request serializer leaves headers out; many deployments put them in.
    serializers: { req: (request: FastifyRequest) => ({ method: request.method, url: request.url, headers: request.headers }) }
  }
})
// preValidation, so the bodies that fail validation are logged too.
app.addHook('preValidation', async request => { request.log.trace({ body: request.body }, 'request body') })
await app.ready()
validateResponses(app)
t.teardown(() => app.close())
const db = app.database.db

const secrets = new Map<string, Kind>()
function secret<T extends string> (kind: Kind, value: T): T {
  if (!value) throw new Error(`empty ${kind}`)
  secrets.set(value, kind)
  // What the database keeps of a token is a credential of its own.
  if (kind.endsWith('token') && kind !== 'access token') secrets.set(hashToken(value), 'token hash')
  return value
}
const password = (tag: string) => secret('password', `Pw-${tag}-${randomUUID().slice(0, 8)}-Zq7`)

interface Captured { label: string, status: number, body: string, headers: string }
const responses: Captured[] = []
/**
 * The responses that issued each access and refresh token (none: issued outside them). Without a
 * jti, an access token signed in the same second for the same login is the same string.
 */
const issuedBy = new Map<string, Set<number>>()
function issued (token: string, index?: number) {
  const by = issuedBy.get(token) ?? new Set<number>()
  if (index !== undefined) by.add(index)
  issuedBy.set(token, by)
}
/**
 * The one response (by index, and the part of it) allowed to carry each artefact of a sign-in
 * ceremony: whatever hands it to the browser. Anywhere else, and in every log line and audit row,
 * it is a leak.
 */
const deliveredBy = new Map<string, { index: number, part: 'body' | 'headers' }>()
function delivered (value: string, index: number, part: 'body' | 'headers') { deliveredBy.set(value, { index, part }) }
const requestIds = new Set<string>()

async function call (label: string, options: InjectOptions & { url: string }, token?: string): Promise<LightMyRequestResponse & { index: number }> {
  const res = await app.inject({ ...options, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers } })
  const index = responses.push({ label, status: res.statusCode, body: res.body, headers: JSON.stringify(res.headers) }) - 1
  requestIds.add(String(res.headers['x-request-id']))
  const data = res.statusCode === 200 || (res.statusCode === 201 && options.url.endsWith('/auth/invitations/accept')) ? res.json().data : undefined
  if (data && /\/auth\/(login|refresh|mfa\/verify|invitations\/accept|passkeys\/login\/verify|oidc\/exchange)$/.test(options.url)) {
    if (data.mfaRequired) {
      issued(secret('mfa token', data.mfaToken), index)
    } else {
      issued(secret('access token', data.accessToken), index)
      issued(secret('refresh token', data.refreshToken), index)
    }
  }
  if (data && options.url.endsWith('/auth/mfa/totp/setup')) issued(secret('totp secret', data.secret), index)
  if (data && /\/auth\/mfa\/(totp\/confirm|recovery-codes)$/.test(options.url)) {
    for (const code of data.recoveryCodes) issued(secret('recovery code', code), index)
  }
  return Object.assign(res, { index })
}

async function check (t: Test, label: string, status: number, options: InjectOptions & { url: string }, token?: string) {
  const res = await call(label, options, token)
  if (!t.equal(res.statusCode, status, label)) t.comment(res.body.slice(0, 300))
  return res
}

async function login (t: Test, label: string, email: string, pw: string) {
  const res = await check(t, label, 200, { method: 'POST', url: '/api/v1/auth/login', payload: { email, password: pw }, headers: { 'user-agent': `no-secrets ${label}` } })
  const data = res.json().data
  return { token: data.accessToken as string, refreshToken: data.refreshToken as string }
}

async function newestToken (to: string, template: 'verify_email' | 'password_reset') {
  const row = await db.selectFrom('emailOutbox').select('payload').where('toAddress', '=', to).where('template', '=', template)
    .orderBy('createdAt', 'desc').orderBy('id', 'desc').executeTakeFirstOrThrow()
  return secret(template === 'verify_email' ? 'verify token' : 'reset token', (row.payload as { token: string }).token)
}

/**
 * A TOTP code of the step `offset` away from now, as a secret. Searched for as a JSON string: six
 * bare digits turn up inside any timestamp.
 */
async function totpCode (totpSecret: string, offset = 0) {
  const value = await generate({ secret: totpSecret, epoch: (Math.floor(Date.now() / 30_000) + offset) * 30 + 1 })
  secret('totp code', `"${value}"`)
  return value
}

const userIds = new Set<string>()
async function rememberHash (id: string) {
  userIds.add(id)
  const { passwordHash } = await db.selectFrom('users').select('passwordHash').where('id', '=', id).executeTakeFirstOrThrow()
  if (passwordHash !== null) secret('password hash', passwordHash)
}

t.test('a whole account life leaks no password, token or hash', async t => {
  const adminPassword = password('admin')
  const admin = await createUser(app, { roles: ['admin'], password: adminPassword })
  secret('access token', admin.token)
  secret('refresh token', admin.refreshToken)
  issued(admin.token)
  issued(admin.refreshToken)
  await rememberHash(admin.id)

  // Register, with invalid attempts first: validation errors must not echo what they reject.
  const email = uniqueEmail('nosecret')
  const p1 = password('first')
  await check(t, 'register: unknown property', 400, { method: 'POST', url: '/api/v1/auth/register', payload: { email, password: p1, firstName: 'No', lastName: 'Secret', isAdmin: true } })
  await check(t, 'register: weak password', 400, { method: 'POST', url: '/api/v1/auth/register', payload: { email, password: secret('password', `weakpassword${randomUUID().slice(0, 6)}`), firstName: 'No', lastName: 'Secret' } })
  await check(t, 'register: password is the email', 400, { method: 'POST', url: '/api/v1/auth/register', payload: { email, password: email.toUpperCase(), firstName: 'No', lastName: 'Secret' } })
  const broken = password('broken')
  await check(t, 'register: malformed JSON', 400, { method: 'POST', url: '/api/v1/auth/register', headers: { 'content-type': 'application/json' }, payload: `{"email":"${email}","password": ${broken}}` })
  const registered = await check(t, 'register', 201, { method: 'POST', url: '/api/v1/auth/register', payload: { email, password: p1, firstName: 'No', lastName: 'Secret' } })
  const id = registered.json().data.id as string
  await rememberHash(id)
  await check(t, 'register: email taken', 409, { method: 'POST', url: '/api/v1/auth/register', payload: { email, password: password('taken'), firstName: 'No', lastName: 'Secret' } })

  // Logins that fail, then one that works; the refresh token is rotated and a spent one replayed.
  await check(t, 'login: wrong password', 401, { method: 'POST', url: '/api/v1/auth/login', payload: { email, password: password('wrong') } })
  await check(t, 'login: unknown account', 401, { method: 'POST', url: '/api/v1/auth/login', payload: { email: uniqueEmail('nobody'), password: password('nobody') } })
  const first = await login(t, 'login', email, p1)
  await check(t, 'me', 200, { method: 'GET', url: '/api/v1/auth/me', headers: { cookie: `session=${secret('bogus credential', randomUUID())}` } }, first.token)
  let refreshToken = first.refreshToken
  for (let i = 1; i <= 3; i++) {
    const res = await check(t, `refresh ${i}`, 200, { method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } })
    refreshToken = res.json().data.refreshToken
  }
  await check(t, 'refresh: spent token replayed', 401, { method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: first.refreshToken } })
  await check(t, 'refresh: family revoked', 401, { method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } })
  await check(t, 'refresh: unknown token', 401, { method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: secret('bogus credential', `rt-${randomUUID()}`) } })

  // Email verification: a resend, the newest token, and a replay of it.
  const second = await login(t, 'login again', email, p1)
  await check(t, 'verify resend', 202, { method: 'POST', url: '/api/v1/auth/email/verify/resend' }, second.token)
  const rows = await db.selectFrom('emailOutbox').select('payload').where('toAddress', '=', email).where('template', '=', 'verify_email').execute()
  t.equal(rows.length, 2, 'two verification emails')
  for (const row of rows) secret('verify token', (row.payload as { token: string }).token)
  const verifyToken = await newestToken(email, 'verify_email')
  await check(t, 'verify', 204, { method: 'POST', url: '/api/v1/auth/email/verify', payload: { token: verifyToken } })
  await check(t, 'verify: replayed', 400, { method: 'POST', url: '/api/v1/auth/email/verify', payload: { token: verifyToken } })

  // Password reset: a rejected new password first (the token stays usable), then the reset, then a replay.
  await check(t, 'forgot', 202, { method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email } })
  const resetToken = await newestToken(email, 'password_reset')
  const p2 = password('reset')
  await check(t, 'reset: weak password', 400, { method: 'POST', url: '/api/v1/auth/password/reset', payload: { token: resetToken, password: secret('password', `Wk1-${randomUUID().slice(0, 3)}`) } })
  await check(t, 'reset: unknown property', 400, { method: 'POST', url: '/api/v1/auth/password/reset', payload: { token: resetToken, password: p2, remember: true } })
  await check(t, 'reset', 204, { method: 'POST', url: '/api/v1/auth/password/reset', payload: { token: resetToken, password: p2 } })
  await rememberHash(id)
  await check(t, 'reset: replayed', 400, { method: 'POST', url: '/api/v1/auth/password/reset', payload: { token: resetToken, password: password('replayed') } })
  await check(t, 'me: token of a login the reset ended', 401, { method: 'GET', url: '/api/v1/auth/me' }, second.token)

  // Password change: a wrong current password, an invalid body, then the change.
  const third = await login(t, 'login after reset', email, p2)
  const other = await login(t, 'second login after reset', email, p2)
  const p3 = password('changed')
  await check(t, 'change: wrong current password', 401, { method: 'POST', url: '/api/v1/auth/password/change', payload: { currentPassword: password('not-current'), newPassword: p3 } }, third.token)
  await check(t, 'change: missing new password', 400, { method: 'POST', url: '/api/v1/auth/password/change', payload: { currentPassword: p2 } }, third.token)
  await check(t, 'change', 204, { method: 'POST', url: '/api/v1/auth/password/change', payload: { currentPassword: p2, newPassword: p3 } }, third.token)
  await rememberHash(id)
  await check(t, 'me: the other login ended', 401, { method: 'GET', url: '/api/v1/auth/me' }, other.token)

  // Sessions, logout, logout-all.
  const fourth = await login(t, 'login after change', email, p3)
  const sessions = await check(t, 'sessions', 200, { method: 'GET', url: '/api/v1/auth/sessions' }, third.token)
  const foreign = (sessions.json().data as Array<{ id: string, current: boolean }>).find(s => !s.current)
  t.ok(foreign, 'another session is listed')
  await check(t, 'sessions: delete', 204, { method: 'DELETE', url: `/api/v1/auth/sessions/${foreign?.id}` }, third.token)
  await check(t, 'me: the deleted session', 401, { method: 'GET', url: '/api/v1/auth/me' }, fourth.token)
  await check(t, 'logout', 204, { method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken: third.refreshToken } })
  await check(t, 'logout: spent token', 204, { method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken: first.refreshToken } })
  const fifth = await login(t, 'login before logout-all', email, p3)
  await check(t, 'logout-all', 204, { method: 'POST', url: '/api/v1/auth/logout-all' }, fifth.token)
  await check(t, 'me: after logout-all', 401, { method: 'GET', url: '/api/v1/auth/me' }, fifth.token)

  // Authorization headers that are not valid credentials.
  const bogusBearer = secret('bogus credential', `bogus-${randomUUID()}`)
  const basicPassword = password('basic')
  const basic = secret('bogus credential', Buffer.from(`${email}:${basicPassword}`).toString('base64'))
  const now = Math.floor(Date.now() / 1000)
  const forged = secret('bogus credential', forgeJwt({ alg: 'HS256', typ: 'JWT' },
    { sub: id, sid: randomUUID(), typ: 'access', iat: now, exp: now + 600, iss: config.jwtIssuer, aud: config.jwtAudience },
    { hmac: `wrong-${randomUUID()}`, alg: 'sha256' }))
  const unsigned = secret('bogus credential', forgeJwt({ alg: 'none' }, { sub: id, sid: randomUUID(), typ: 'access' }))
  for (const [name, authorization] of [['bearer garbage', `Bearer ${bogusBearer}`], ['basic', `Basic ${basic}`], ['forged JWT', `Bearer ${forged}`], ['alg none', `Bearer ${unsigned}`], ['bare token', bogusBearer]]) {
    await check(t, `me: ${name}`, 401, { method: 'GET', url: '/api/v1/auth/me', headers: { authorization } })
    await check(t, `users: ${name}`, 401, { method: 'GET', url: `/api/v1/users/${id}`, headers: { authorization } })
  }

  // An admin manages another user through its whole life.
  const a = admin.token
  const otherEmail = uniqueEmail('nosecret-managed')
  const p4 = password('managed')
  await check(t, 'users create: weak password', 400, { method: 'POST', url: '/api/v1/users', payload: { email: otherEmail, password: secret('password', `alllower${randomUUID().slice(0, 6)}`), firstName: 'Man', lastName: 'Aged' } }, a)
  await check(t, 'users create: password hash smuggled in', 400, { method: 'POST', url: '/api/v1/users', payload: { email: otherEmail, password: p4, passwordHash: secret('password hash', '$argon2id$v=19$m=1024,t=2,p=1$smuggled$smuggled'), firstName: 'Man', lastName: 'Aged' } }, a)
  const created = await check(t, 'users create', 201, { method: 'POST', url: '/api/v1/users', payload: { email: otherEmail, password: p4, firstName: 'Man', lastName: 'Aged', roles: ['user'] } }, a)
  const managedId = created.json().data.id as string
  await rememberHash(managedId)
  await check(t, 'users create: duplicate', 409, { method: 'POST', url: '/api/v1/users', payload: { email: otherEmail, password: password('dup'), firstName: 'Man', lastName: 'Aged' } }, a)
  const managed = await login(t, 'managed login', otherEmail, p4)
  await check(t, 'users get', 200, { method: 'GET', url: `/api/v1/users/${managedId}` }, a)
  await check(t, 'users list', 200, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(otherEmail)}` }, a)
  await check(t, 'users patch: password is not a field', 400, { method: 'PATCH', url: `/api/v1/users/${managedId}`, payload: { password: password('patched') } }, a)
  await check(t, 'users patch', 200, { method: 'PATCH', url: `/api/v1/users/${managedId}`, payload: { firstName: 'Patched' } }, a)
  const newEmail = uniqueEmail('nosecret-moved')
  await check(t, 'users put', 200, { method: 'PUT', url: `/api/v1/users/${managedId}`, payload: { email: newEmail, firstName: 'Put', lastName: 'Aged', profile: { bio: 'bio', avatarUrl: null, phone: null, locale: null, timezone: null } } }, a)
  await check(t, 'verify the new address', 204, { method: 'POST', url: '/api/v1/auth/email/verify', payload: { token: await newestToken(newEmail, 'verify_email') } })
  await check(t, 'users self get', 200, { method: 'GET', url: `/api/v1/users/${managedId}` }, managed.token)
  await check(t, 'users delete', 204, { method: 'DELETE', url: `/api/v1/users/${managedId}` }, a)
  await check(t, 'users restore', 200, { method: 'POST', url: `/api/v1/users/${managedId}/restore` }, a)
  await check(t, 'users export (admin)', 200, { method: 'GET', url: `/api/v1/users/${managedId}/export` }, a)
  await check(t, 'audit list', 200, { method: 'GET', url: `/api/v1/audit-logs?userId=${id}&limit=100` }, a)
  const sixth = await login(t, 'login for export', email, p3)
  await check(t, 'users export (self)', 200, { method: 'GET', url: `/api/v1/users/${id}/export` }, sixth.token)

  // Second factors: TOTP set up and confirmed, two-step logins (a wrong code, a replay, a recovery
  // code), new recovery codes, a disable, a second authenticator, and an administrator's reset.
  secret('encryption key', config.mfaEncryptionKey.toString('base64'))
  secret('encryption key', config.mfaEncryptionKey.toString('hex'))
  const leftInStep = 30 - (Date.now() / 1000) % 30
  if (leftInStep < 12) await new Promise(resolve => setTimeout(resolve, leftInStep * 1000 + 50))
  const mfaUser = sixth.token
  const setup = await check(t, 'totp setup', 200, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' }, mfaUser)
  const totpSecret = setup.json().data.secret as string
  await check(t, 'totp confirm: wrong code', 400, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: secret('totp code', '"000000"') && '000000' } }, mfaUser)
  const confirmed = await check(t, 'totp confirm', 200, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await totpCode(totpSecret, -1) } }, mfaUser)
  const recoveryCodes = confirmed.json().data.recoveryCodes as string[]
  const rememberMfaRecords = async () => {
    for (const row of await db.selectFrom('userTotp').select('secretSealed').where('userId', '=', id).execute()) secret('sealed secret', row.secretSealed)
    for (const row of await db.selectFrom('userRecoveryCodes').select('codeHash').where('userId', '=', id).execute()) secret('recovery code hash', row.codeHash)
  }
  await rememberMfaRecords()
  const mfaLogin = () => check(t, 'login: second factor required', 200, { method: 'POST', url: '/api/v1/auth/login', payload: { email, password: p3 } })
  const verify = (label: string, status: number, payload: Record<string, string>) => check(t, label, status, { method: 'POST', url: '/api/v1/auth/mfa/verify', payload })
  const mfaToken = (await mfaLogin()).json().data.mfaToken as string
  await verify('mfa verify: wrong code', 401, { mfaToken, code: await totpCode(totpSecret, -1) })
  await verify('mfa verify: wrong recovery code', 401, { mfaToken, recoveryCode: secret('recovery code', `zz${randomUUID().slice(0, 8)}`) })
  const current = await totpCode(totpSecret)
  const verified = await verify('mfa verify', 200, { mfaToken, code: current })
  await verify('mfa verify: spent token', 401, { mfaToken, code: current })
  await verify('mfa verify: replayed code', 401, { mfaToken: (await mfaLogin()).json().data.mfaToken, code: current })
  await verify('mfa verify: recovery code', 200, { mfaToken: (await mfaLogin()).json().data.mfaToken, recoveryCode: recoveryCodes[0] })
  await verify('mfa verify: spent recovery code', 401, { mfaToken: (await mfaLogin()).json().data.mfaToken, recoveryCode: recoveryCodes[0] })
  const twoFactor = verified.json().data.accessToken as string
  await check(t, 'mfa status', 200, { method: 'GET', url: '/api/v1/auth/mfa' }, twoFactor)
  await check(t, 'totp setup: already enabled', 409, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' }, twoFactor)
  await check(t, 'recovery codes: wrong code', 401, { method: 'POST', url: '/api/v1/auth/mfa/recovery-codes', payload: { code: recoveryCodes[0] } }, twoFactor)
  const regenerated = await check(t, 'recovery codes', 200, { method: 'POST', url: '/api/v1/auth/mfa/recovery-codes', payload: { code: await totpCode(totpSecret, 1) } }, twoFactor)
  await rememberMfaRecords()
  await check(t, 'users export (self) with TOTP', 200, { method: 'GET', url: `/api/v1/users/${id}/export` }, twoFactor)
  await check(t, 'audit list with MFA', 200, { method: 'GET', url: `/api/v1/audit-logs?userId=${id}&limit=100` }, a)
  await check(t, 'totp disable', 204, { method: 'POST', url: '/api/v1/auth/mfa/totp/disable', payload: { code: regenerated.json().data.recoveryCodes[0] } }, twoFactor)
  const secondSetup = await check(t, 'totp setup again', 200, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' }, twoFactor)
  await check(t, 'totp confirm again', 200, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await totpCode(secondSetup.json().data.secret, -1) } }, twoFactor)
  await rememberMfaRecords()
  await check(t, 'mfa reset by an administrator', 204, { method: 'POST', url: `/api/v1/users/${id}/mfa/reset` }, a)
  await check(t, 'me: a login the reset ended', 401, { method: 'GET', url: '/api/v1/auth/me' }, twoFactor)

  // An invitation: created, its email's token, a refused acceptance, then the one that signs in.
  const invited = uniqueEmail('invited')
  await check(t, 'invitation', 201, { method: 'POST', url: '/api/v1/invitations', payload: { email: invited, firstName: 'In', lastName: 'Vited' } }, a)
  await check(t, 'invitations list', 200, { method: 'GET', url: '/api/v1/invitations' }, a)
  const invitation = await db.selectFrom('emailOutbox').select('payload').where('toAddress', '=', invited).where('template', '=', 'invitation').executeTakeFirstOrThrow()
  const invitationToken = secret('invitation token', (invitation.payload as { token: string }).token)
  const p5 = password('invited')
  await check(t, 'invitation accept: weak password', 400, { method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: invitationToken, password: secret('password', `weak${randomUUID().slice(0, 6)}`) } })
  const accepted = await check(t, 'invitation accept', 201, { method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: invitationToken, password: p5 } })
  await rememberHash(accepted.json().data.user.id)
  await check(t, 'invitation accept: replayed', 400, { method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: invitationToken, password: password('replay') } })

  // Passkeys: the accepted invitation's user registers one, then signs in with it alone. The
  // challenges are allowed only in the options answer that hands them to the authenticator; the
  // assertion's signature nowhere (until its challenge is spent it is a login); the credential's
  // public key is no secret, but key material the service keeps out of every answer, log and audit row.
  const invitedUser = { id: accepted.json().data.user.id as string, token: accepted.json().data.accessToken as string }
  const authenticator = new SoftAuthenticator()
  const registration = await check(t, 'passkey register options', 200, { method: 'POST', url: '/api/v1/auth/passkeys/register/options' }, invitedUser.token)
  const registrationOptions = registration.json().data
  delivered(secret('passkey challenge', registrationOptions.challenge), registration.index, 'body')
  const coseKey = authenticator.coseKey()
  for (const encoding of ['base64url', 'base64', 'hex'] as const) secret('passkey public key', coseKey.toString(encoding))
  await check(t, 'passkey register verify', 201, { method: 'POST', url: '/api/v1/auth/passkeys/register/verify', payload: { response: authenticator.create(registrationOptions), name: 'Laptop' } }, invitedUser.token)
  const passkeyOptions = await check(t, 'passkey login options', 200, { method: 'POST', url: '/api/v1/auth/passkeys/login/options', payload: {} })
  const { challengeId, options: loginOptions } = passkeyOptions.json().data
  delivered(secret('passkey challenge', loginOptions.challenge), passkeyOptions.index, 'body')
  const assertion = authenticator.get(loginOptions)
  secret('passkey signature', assertion.response.signature)
  const passkeyLogin = await check(t, 'passkey login verify', 200, { method: 'POST', url: '/api/v1/auth/passkeys/login/verify', payload: { challengeId, response: assertion } })
  t.equal(passkeyLogin.json().data.user.id, invitedUser.id, 'the passkey signs the invited user in')
  await check(t, 'mfa status with a passkey', 200, { method: 'GET', url: '/api/v1/auth/mfa' }, invitedUser.token)

  // OpenID Connect: one whole sign-in with the real provider, as a new user. Where each artefact may be:
  // - state and nonce: only in the authorize answer's Location (to the provider, through the browser);
  // - the flow cookie: only in that answer's Set-Cookie (the callback's Cookie header is redacted);
  // - the provider's authorization code: in no answer of ours (the provider's redirect delivers it;
  //   the callback URL that brings it back is logged with it redacted);
  // - the PKCE code_verifier, the client secret, the provider's ID and access tokens: nowhere, as
  //   they travel only between the service and the provider;
  // - our one-time exchange code: only in the callback's Location (to the app, through the browser);
  //   the exchange request's body is redacted.
  secret('oidc client secret', CLIENT.clientSecret)
  const { startFlow, callback } = oidcFlow(options => call(`oidc ${options.url.split('?')[0].split('/').at(-1)}`, options))
  const oidcEmail = uniqueEmail('nosecret-oidc')
  idp.next(idp.account({ email: oidcEmail, email_verified: true, given_name: 'Oi', family_name: 'Dc' }))
  const { res: authorize, appJar, providerUrl } = await startFlow('idp')
  t.equal(authorize.statusCode, 302, 'oidc authorize')
  delivered(secret('oidc state', providerUrl.searchParams.get('state')!), authorize.index, 'headers')
  delivered(secret('oidc nonce', providerUrl.searchParams.get('nonce')!), authorize.index, 'headers')
  delivered(secret('oidc flow cookie', appJar.get('oidc_flow')!), authorize.index, 'headers')
  const back = await throughProvider(providerUrl)
  secret('provider authorization code', back.searchParams.get('code')!)
  const grantsBefore = idp.grants.length
  const signedIn = await callback(back, appJar)
  const [grant] = idp.grants.slice(grantsBefore)
  t.equal(grant?.code, back.searchParams.get('code'), 'the provider was asked for tokens with the code it delivered')
  secret('pkce code verifier', grant.codeVerifier)
  secret('provider access token', grant.accessToken)
  secret('provider id token', grant.idToken)
  const exchangeCode = redirectParams(signedIn).code!
  delivered(secret('oidc exchange code', exchangeCode), signedIn.index, 'headers')
  secret('token hash', hashToken(exchangeCode))
  const oidcAnswer = await check(t, 'oidc exchange', 200, { method: 'POST', url: '/api/v1/auth/oidc/exchange', payload: { code: exchangeCode } })
  const oidcUser = oidcAnswer.json().data.user.id as string
  userIds.add(oidcUser)
  t.equal(oidcAnswer.json().data.user.email, oidcEmail, 'signed in as the provider account')
  await check(t, 'oidc exchange: spent code', 400, { method: 'POST', url: '/api/v1/auth/oidc/exchange', payload: { code: exchangeCode } })
  await check(t, 'identities', 200, { method: 'GET', url: '/api/v1/auth/identities' }, oidcAnswer.json().data.accessToken)
  await check(t, 'users export (oidc user)', 200, { method: 'GET', url: `/api/v1/users/${oidcUser}/export` }, oidcAnswer.json().data.accessToken)

  await check(t, 'users erase', 204, { method: 'POST', url: `/api/v1/users/${managedId}/erase` }, a)
  await check(t, 'users get: erased', 404, { method: 'GET', url: `/api/v1/users/${managedId}` }, a)

  // The delivery worker's log lines (log transport); a shared database may hold other tests' emails first.
  const unsent = () => db.selectFrom('emailOutbox').select('id').where('toAddress', '=', email).where('sentAt', 'is', null).execute()
  for (let i = 0; i < 50 && (await unsent()).length > 0; i++) await app.emailDelivery.deliverPending()
  t.same(await unsent(), [], 'every email of the account was delivered')

  const audit = await db.selectFrom('userAuditLog').selectAll()
    .where(eb => eb.or([eb('userId', 'in', [...userIds]), eb('actorId', 'in', [...userIds]), eb('requestId', 'in', [...requestIds])]))
    .execute()

  // The search must cover something: without these, an empty log would pass.
  t.ok(lines.length > responses.length, 'the log has lines')
  const logged = (pattern: string) => lines.some(line => line.includes(pattern))
  t.ok(lines.some(line => line.includes('"request completed"') && line.includes('/api/v1/auth/login')), 'request lines are logged')
  t.ok(logged('"authorization":"[redacted]"'), 'request lines carry the authorization header, redacted')
  t.ok(logged('"cookie":"[redacted]"'), 'and the cookie header, redacted')
  t.ok(logged('"msg":"database rejected the request"'), 'a database error is logged (the duplicate email)')
  for (const field of ['password', 'currentPassword', 'newPassword', 'passwordHash', 'refreshToken', 'token', 'code', 'recoveryCode', 'mfaToken']) {
    t.ok(logged(`"${field}":"[redacted]"`), `logged bodies carry ${field}, redacted`)
  }
  t.ok(logged('"response":"[redacted]"'), "logged bodies carry the authenticator's response, redacted")
  t.ok(logged('/api/v1/auth/oidc/idp/callback?code=[redacted]&state=[redacted]'), "the callback's logged URL carries the provider's code and the state, redacted")
  t.ok(lines.some(line => line.includes('email delivered') && line.includes('"template":"verify_email"') && line.includes(email)), 'the verification email was logged')
  t.ok(lines.some(line => line.includes('email delivered') && line.includes('"template":"password_reset"') && line.includes(email)), 'the reset email was logged')
  const actions = new Set(audit.map(row => row.action))
  for (const action of ['user.created', 'auth.login', 'auth.login_failed', 'auth.token_reused', 'user.email_verified', 'auth.password_reset',
    'auth.password_changed', 'auth.session_revoked', 'auth.logout', 'user.updated', 'user.deleted', 'user.restored', 'user.erased',
    'auth.mfa_enabled', 'auth.mfa_failed', 'auth.recovery_codes_regenerated', 'auth.mfa_disabled', 'user.mfa_reset',
    'invitation.created', 'invitation.accepted', 'auth.passkey_added', 'auth.identity_linked']) {
    t.ok(actions.has(action), `an audit row ${action}`)
  }
  const kinds = new Set(secrets.values())
  t.same([...kinds].sort(), ['access token', 'bogus credential', 'encryption key', 'invitation token', 'mfa token', 'oidc client secret', 'oidc exchange code',
    'oidc flow cookie', 'oidc nonce', 'oidc state', 'passkey challenge', 'passkey public key', 'passkey signature', 'password', 'password hash',
    'pkce code verifier', 'provider access token', 'provider authorization code', 'provider id token', 'recovery code', 'recovery code hash',
    'refresh token', 'reset token', 'sealed secret', 'token hash', 'totp code', 'totp secret', 'verify token'], 'every kind of secret is searched for')
  for (const [token, by] of issuedBy) {
    for (const index of by) t.ok(responses[index]?.body.includes(token), `${responses[index]?.label} carries the token it issued`)
  }
  // The artefacts searched for are the real ones: each is where it is delivered.
  for (const [value, { index, part }] of deliveredBy) {
    t.ok(responses[index]?.[part].includes(value), `${responses[index]?.label} (${part}) carries the ${secrets.get(value)} it delivers`)
  }
  const deliveredAt = (i: number, part: 'body' | 'headers') => (value: string) => deliveredBy.get(value)?.index === i && deliveredBy.get(value)?.part === part

  /** Where a text contains a secret or an argon2 hash; allowed is what that place may carry. */
  function leaks (where: string, text: string, allowed: (value: string) => boolean = () => false) {
    const found: string[] = []
    if (text.includes('$argon2')) found.push(`${where}: an argon2 hash`)
    for (const [value, kind] of secrets) {
      if (text.includes(value) && !allowed(value)) found.push(`${where}: a ${kind}`)
    }
    return found
  }

  t.same(lines.flatMap((line, i) => leaks(`log line ${i}`, line)), [], 'no log line holds a secret')
  t.same(audit.flatMap(row => leaks(`audit ${row.action} ${row.id}`, JSON.stringify(row))), [], 'no audit row holds a secret')
  t.same(responses.flatMap((res, i) => [
    ...leaks(`${res.label} (body)`, res.body, value => issuedBy.get(value)?.has(i) === true || deliveredAt(i, 'body')(value)),
    ...leaks(`${res.label} (headers)`, res.headers, deliveredAt(i, 'headers'))
  ]), [], 'no response holds a secret, except the tokens it issues and the ceremony artefacts it delivers')
})

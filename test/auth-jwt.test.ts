import t from 'tap'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { build, createUser, uniqueEmail } from './helper.js'
import { errorWithoutRequestId, forgeJwt, me, outboxToken, register } from './auth-helpers.js'

t.test('access tokens are refused unless genuine, current and of the right kind', async t => {
  const app = await build(t)
  const { jwtSecret: secret, jwtIssuer: iss, jwtAudience: aud } = app.config
  const user = await createUser(app)
  const other = await createUser(app)
  const claims = JSON.parse(Buffer.from(user.token.split('.')[1], 'base64url').toString()) as Record<string, unknown>
  const now = Math.floor(Date.now() / 1000)
  const good = { sub: user.id, sid: claims.sid, typ: 'access', iss, aud, iat: now, exp: now + 600 }
  const hs256 = { hmac: secret, alg: 'sha256' as const }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const rsaPrivateKey = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

  const expect401 = async (token: string, what: string, code = 'UNAUTHORIZED') => {
    const res = await me(app, token)
    t.equal(res.statusCode, 401, `${what}: 401`)
    t.equal(res.json().error?.code, code, `${what}: ${code}`)
  }

  // The forger itself must produce tokens the API accepts, or every refusal below proves nothing.
  t.equal((await me(app, forgeJwt({ alg: 'HS256', typ: 'JWT' }, good, hs256))).statusCode, 200, 'a correctly forged token is accepted')
  t.equal((await me(app, user.token)).statusCode, 200)

  await expect401(forgeJwt({ alg: 'none', typ: 'JWT' }, good), 'alg none, no signature')
  await expect401(`${forgeJwt({ alg: 'none' }, good)}${user.token.split('.')[2]}`, 'alg none with a signature')
  await expect401(forgeJwt({ alg: 'NONE' }, good), 'alg NONE')

  const [header, , signature] = user.token.split('.')
  const tampered = Buffer.from(JSON.stringify({ ...claims, sub: other.id })).toString('base64url')
  await expect401(`${header}.${tampered}.${signature}`, 'tampered payload')
  await expect401(`${header}.${user.token.split('.')[1]}.${signature.slice(0, -4)}AAAA`, 'tampered signature')

  await expect401(forgeJwt({ alg: 'HS256' }, good, { hmac: 'another-secret-that-is-long-enough-0123456789', alg: 'sha256' }), 'another secret')
  await expect401(forgeJwt({ alg: 'HS512' }, good, { hmac: secret, alg: 'sha512' }), 'HS512 with the right secret')
  await expect401(forgeJwt({ alg: 'RS256' }, good, { rsaPrivateKey }), 'RS256')
  await expect401(forgeJwt({ alg: 'RS256' }, good, hs256), 'RS256 header over an HMAC signature')

  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, iat: now - 3600, exp: now - 60 }, hs256), 'expired', 'TOKEN_EXPIRED')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, nbf: now + 3600 }, hs256), 'not yet valid')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, iss: 'someone-else' }, hs256), 'wrong issuer')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, aud: 'someone-else' }, hs256), 'wrong audience')
  const { iss: _iss, ...noIssuer } = good
  const { aud: _aud, ...noAudience } = good
  await expect401(forgeJwt({ alg: 'HS256' }, noIssuer, hs256), 'no issuer')
  await expect401(forgeJwt({ alg: 'HS256' }, noAudience, hs256), 'no audience')
  const { sid: _sid, ...noSid } = good
  const { exp: _exp, ...noExp } = good
  await expect401(forgeJwt({ alg: 'HS256' }, noSid, hs256), 'no sid')
  await expect401(forgeJwt({ alg: 'HS256' }, noExp, hs256), 'no exp')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, typ: 'refresh' }, hs256), 'typ refresh')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, sid: 'not-a-uuid' }, hs256), 'malformed sid')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, sub: 'not-a-uuid' }, hs256), 'malformed sub')
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, sub: other.id }, hs256), "another user's id with this session")
  await expect401(forgeJwt({ alg: 'HS256' }, { ...good, sid: randomUUID() }, hs256), 'an unknown session')

  // Tokens of other kinds are opaque strings, never access tokens.
  const registered = await register(app)
  await app.inject({ method: 'POST', url: '/api/v1/auth/password/forgot', payload: { email: registered.email } })
  await expect401(user.refreshToken, 'a refresh token as Bearer')
  await expect401(registered.verifyToken, 'a verification token as Bearer')
  await expect401(await outboxToken(app, registered.email, 'password_reset'), 'a reset token as Bearer')

  for (const authorization of ['', 'Bearer', 'Bearer ', `Basic ${user.token}`, `bearer${user.token}`, 'Bearer a.b.c']) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { authorization } })
    t.equal(res.statusCode, 401, `Authorization: "${authorization.slice(0, 20)}"`)
  }
})

t.test('an access token signed by the app with a short expiry is refused with TOKEN_EXPIRED once it has expired', async t => {
  const app = await build(t, { jwtExpirySec: 60 })
  const user = await createUser(app)
  const claims = JSON.parse(Buffer.from(user.token.split('.')[1], 'base64url').toString())
  t.equal(claims.exp - claims.iat, 60, 'the configured expiry is used')
  // Issued two minutes ago, so its 60 s are over: no waiting needed.
  const realNow = Date.now
  Date.now = () => realNow() - 120_000
  let stale: string
  try {
    stale = app.signAccessToken({ sub: user.id, sid: claims.sid, typ: 'access' })
  } finally {
    Date.now = realNow
  }
  const res = await me(app, stale)
  t.equal(res.statusCode, 401)
  t.equal(res.json().error.code, 'TOKEN_EXPIRED')
})

t.test('unknown email, wrong password and suspended account give the identical 401', async t => {
  const app = await build(t)
  const user = await createUser(app)
  const suspended = await createUser(app)
  await app.database.db.updateTable('users').set({ status: 'suspended' }).where('id', '=', suspended.id).execute()
  const attempt = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })

  const unknown = await attempt(uniqueEmail('ghost'), user.password)
  const wrong = await attempt(user.email, 'Wrong-Password-1')
  const blocked = await attempt(suspended.email, suspended.password)
  for (const res of [unknown, wrong, blocked]) {
    t.equal(res.statusCode, 401)
    t.equal(res.headers['cache-control'], 'no-store')
  }
  t.equal(unknown.json().error.code, 'INVALID_CREDENTIALS')
  t.same(errorWithoutRequestId(wrong), errorWithoutRequestId(unknown), 'wrong password = unknown email')
  t.same(errorWithoutRequestId(blocked), errorWithoutRequestId(unknown), 'suspended = unknown email')
  t.same(Object.keys(unknown.headers).filter(h => !['x-request-id', 'date'].includes(h)).sort(),
    Object.keys(wrong.headers).filter(h => !['x-request-id', 'date'].includes(h)).sort(), 'the same headers')
})

t.test('a token accepted (and cached) while valid is refused once it expires', async t => {
  // Long enough that a busy machine still gets both requests in while the token is valid.
  const app = await build(t, { jwtExpirySec: 4 })
  const user = await createUser(app)
  t.equal((await me(app, user.token)).statusCode, 200, 'valid now')
  t.equal((await me(app, user.token)).statusCode, 200, 'valid again (verification cached)')
  await new Promise(resolve => setTimeout(resolve, 5100))
  const res = await me(app, user.token)
  t.equal(res.statusCode, 401)
  t.equal(res.json().error.code, 'TOKEN_EXPIRED')
})

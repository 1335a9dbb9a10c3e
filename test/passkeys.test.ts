import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, type TestUser } from './helper.js'
import { FLAG_AT, FLAG_UP, ORIGIN, RP_ID, SoftAuthenticator, type Ceremony } from './soft-authenticator.js'

/**
 * Passkeys end to end against a software authenticator: a real ES256 key pair, a real attestation
 * object (CBOR, fmt none) and real signed assertions, verified by @simplewebauthn/server as a
 * browser's would be. Nothing of the library is mocked.
 */

const app = await build(t, {}, { WEBAUTHN_RP_ID: RP_ID, WEBAUTHN_ORIGINS: `${ORIGIN},https://other.example.test` })
const db = app.database.db

const registrationOptions = (user: TestUser) => as(app, user, { method: 'POST', url: '/api/v1/auth/passkeys/register/options' })
const registerVerify = (user: TestUser, payload: object) => as(app, user, { method: 'POST', url: '/api/v1/auth/passkeys/register/verify', payload })
const loginOptions = (payload: object = {}) => app.inject({ method: 'POST', url: '/api/v1/auth/passkeys/login/options', payload })
const loginVerify = (payload: object) => app.inject({ method: 'POST', url: '/api/v1/auth/passkeys/login/verify', payload })
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())

/** Registers a new passkey of the user's through the API. */
async function enrol (user: TestUser, name?: string) {
  const authenticator = new SoftAuthenticator()
  const options = (await registrationOptions(user)).json().data
  const res = await registerVerify(user, { response: authenticator.create(options), ...(name ? { name } : {}) })
  if (res.statusCode !== 201) throw new Error(`registration failed: ${res.statusCode} ${res.body}`)
  return { authenticator, passkey: res.json().data }
}

/** A passwordless login attempt: options (with email or not), then the authenticator's assertion. */
async function passkeyLogin (authenticator: SoftAuthenticator, ceremony: Ceremony & { counter?: number } = {}, email?: string) {
  const { challengeId, options } = (await loginOptions(email ? { email } : {})).json().data
  const response = authenticator.get(options, ceremony)
  return { res: await loginVerify({ challengeId, response }), challengeId, response }
}

const auditOf = (userId: string, action: string) => db.selectFrom('userAuditLog').select(['changes', 'actorId'])
  .where('userId', '=', userId).where('action', '=', action).orderBy('createdAt').execute()
const metric = async (series: string) => {
  const text = (await app.inject({ url: '/metrics' })).body
  return Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
}

t.test('registering a passkey, then a passwordless login with it', async t => {
  const user = await createUser(app)
  const optionsRes = await registrationOptions(user)
  t.equal(optionsRes.statusCode, 200)
  const options = optionsRes.json().data
  t.equal(options.rp.id, RP_ID, 'the configured RP ID')
  t.equal(options.user.name, user.email)
  t.equal(options.user.id, Buffer.from(user.id.replaceAll('-', ''), 'hex').toString('base64url'), 'the user handle is the user id, not the email')
  t.same(options.authenticatorSelection, { residentKey: 'required', userVerification: 'required', requireResidentKey: true }, 'a discoverable credential that verifies the user')
  t.ok(options.pubKeyCredParams.some((p: { alg: number }) => p.alg === -7), 'ES256 offered')

  const authenticator = new SoftAuthenticator()
  const res = await registerVerify(user, { response: authenticator.create(options), name: 'Laptop' })
  t.equal(res.statusCode, 201, res.body)
  const passkey = res.json().data
  t.same(Object.keys(passkey).sort(), ['createdAt', 'id', 'lastUsedAt', 'name'], 'no key material, credential id or counter')
  t.equal(passkey.name, 'Laptop')
  t.equal(passkey.lastUsedAt, null)

  const row = await db.selectFrom('userPasskeys').selectAll().where('id', '=', passkey.id).executeTakeFirstOrThrow()
  t.equal(row.userId, user.id)
  t.equal(row.credentialId, authenticator.id)
  t.ok(row.publicKey instanceof Uint8Array && Buffer.from(row.publicKey).equals(authenticator.coseKey()), 'the COSE public key, stored as bytea')
  t.same(row.transports, ['internal', 'hybrid'])
  t.same(await app.passkeysService.list(user.id), [passkey], 'listed for the user (what GET /auth/mfa shows)')
  const added = await auditOf(user.id, 'auth.passkey_added')
  t.same(added.map(a => a.changes), [{ passkeyId: passkey.id, name: 'Laptop' }], 'audited, without key material')

  t.test('the registration answer is accepted once', async t => {
    const again = await registerVerify(user, { response: authenticator.create(options) })
    const error = assertError(t, again, 400, 'VALIDATION_ERROR')
    t.equal(error.details?.[0]?.field, 'response')
  })

  t.test('a discoverable login: token pair with amr ["passkey"]', async t => {
    const successesBefore = await metric('logins_total{outcome="success"}')
    const { res } = await passkeyLogin(authenticator)
    t.equal(res.statusCode, 200, res.body)
    const pair = res.json().data
    t.equal(pair.user.id, user.id)
    t.equal(pair.tokenType, 'Bearer')
    t.same(claimsOf(pair.accessToken).amr, ['passkey'])
    const me = await as(app, { token: pair.accessToken }, { method: 'GET', url: '/api/v1/auth/me' })
    t.equal(me.statusCode, 200, 'the token works')
    t.equal(me.json().data.id, user.id)
    const logins = await auditOf(user.id, 'auth.login')
    t.same(logins.at(-1)?.changes, { method: 'passkey', amr: ['passkey'] }, 'auth.login with method passkey')
    t.equal(await metric('logins_total{outcome="success"}'), successesBefore + 1, 'counted as a successful login')
    const [listed] = await app.passkeysService.list(user.id)
    t.ok(listed.lastUsedAt, 'lastUsedAt set')
    const stored = await db.selectFrom('userPasskeys').select('signCount').where('id', '=', passkey.id).executeTakeFirstOrThrow()
    t.equal(Number(stored.signCount), authenticator.counter, 'the counter is kept')
  })

  t.test('a login for an email: allowCredentials lists that account\'s passkeys', async t => {
    const { challengeId, options } = (await loginOptions({ email: user.email.toUpperCase() })).json().data
    t.same(options.allowCredentials, [{ id: authenticator.id, transports: ['internal', 'hybrid'], type: 'public-key' }])
    t.equal(options.userVerification, 'required')
    const res = await loginVerify({ challengeId, response: authenticator.get(options) })
    t.equal(res.statusCode, 200, res.body)
  })
})

t.test('an assertion that fails is 401 INVALID_CREDENTIALS', async t => {
  const user = await createUser(app)
  const { authenticator, passkey } = await enrol(user)

  t.test('a challenge is accepted once', async t => {
    const { res, challengeId, response } = await passkeyLogin(authenticator)
    t.equal(res.statusCode, 200)
    assertError(t, await loginVerify({ challengeId, response }), 401, 'INVALID_CREDENTIALS', 'replayed')
    const failures = await auditOf(user.id, 'auth.login_failed')
    t.match(failures.at(-1)?.changes, { method: 'passkey', reason: 'challenge', passkeyId: passkey.id }, 'audited for the passkey\'s user')
  })

  t.test('two requests racing with one challenge: one login', async t => {
    const { challengeId, options } = (await loginOptions()).json().data
    const response = authenticator.get(options)
    const answers = await Promise.all([1, 2, 3].map(() => loginVerify({ challengeId, response })))
    t.same(answers.map(a => a.statusCode).sort(), [200, 401, 401])
  })

  t.test('an expired challenge', async t => {
    const { challengeId, options } = (await loginOptions()).json().data
    await db.updateTable('webauthnChallenges').set({ expiresAt: new Date(Date.now() - 1000) }).where('id', '=', challengeId).execute()
    assertError(t, await loginVerify({ challengeId, response: authenticator.get(options) }), 401, 'INVALID_CREDENTIALS')
  })

  t.test('an unknown challenge id', async t => {
    const { options } = (await loginOptions()).json().data
    assertError(t, await loginVerify({ challengeId: randomUUID(), response: authenticator.get(options) }), 401, 'INVALID_CREDENTIALS')
  })

  t.test('an origin not in WEBAUTHN_ORIGINS', async t => {
    const { res } = await passkeyLogin(authenticator, { origin: 'https://evil.example.test' })
    assertError(t, res, 401, 'INVALID_CREDENTIALS')
    t.match((await auditOf(user.id, 'auth.login_failed')).at(-1)?.changes, { method: 'passkey', reason: 'invalid_assertion', passkeyId: passkey.id })
    t.equal((await passkeyLogin(authenticator, { origin: 'https://other.example.test' })).res.statusCode, 200, 'the second configured origin is fine')
  })

  t.test('another RP ID', async t => {
    assertError(t, (await passkeyLogin(authenticator, { rpId: 'evil.example.test' })).res, 401, 'INVALID_CREDENTIALS')
  })

  t.test('no user verification, passwordless', async t => {
    assertError(t, (await passkeyLogin(authenticator, { flags: FLAG_UP })).res, 401, 'INVALID_CREDENTIALS')
  })

  t.test('a signature by another key', async t => {
    const impostor = new SoftAuthenticator()
    const { challengeId, options } = (await loginOptions()).json().data
    const forged = { ...impostor.get(options, { counter: 1000 }), id: authenticator.id, rawId: authenticator.id }
    assertError(t, await loginVerify({ challengeId, response: forged }), 401, 'INVALID_CREDENTIALS')
    t.match((await auditOf(user.id, 'auth.login_failed')).at(-1)?.changes, { reason: 'invalid_assertion' }, 'a forgery is not taken for a clone')
    t.equal((await passkeyLogin(authenticator)).res.statusCode, 200, 'and it did not move the counter on')
  })

  t.test('a signature counter that does not increase (a cloned key)', async t => {
    const failuresBefore = await metric('logins_total{outcome="failure"}')
    const current = authenticator.counter
    const { res } = await passkeyLogin(authenticator, { counter: current })
    assertError(t, res, 401, 'INVALID_CREDENTIALS', 'the same counter')
    t.match((await auditOf(user.id, 'auth.login_failed')).at(-1)?.changes, { method: 'passkey', reason: 'counter_regression', passkeyId: passkey.id }, 'audited')
    assertError(t, (await passkeyLogin(authenticator, { counter: current - 1 })).res, 401, 'INVALID_CREDENTIALS', 'a lower counter')
    t.equal(await metric('logins_total{outcome="failure"}'), failuresBefore + 2, 'counted as failed logins')
    t.equal((await passkeyLogin(authenticator, { counter: current + 1 })).res.statusCode, 200, 'a higher one is fine')
  })

  t.test('an unknown credential, and one whose options were for another account', async t => {
    assertError(t, (await passkeyLogin(new SoftAuthenticator())).res, 401, 'INVALID_CREDENTIALS', 'unknown')
    const other = await createUser(app)
    await enrol(other)
    const { res } = await passkeyLogin(authenticator, {}, other.email)
    assertError(t, res, 401, 'INVALID_CREDENTIALS', "another account's options")
  })

  t.test('a suspended account', async t => {
    const suspended = await createUser(app)
    const { authenticator } = await enrol(suspended)
    await db.updateTable('users').set({ status: 'suspended' }).where('id', '=', suspended.id).execute()
    assertError(t, (await passkeyLogin(authenticator)).res, 401, 'INVALID_CREDENTIALS')
  })
})

t.test('registration is refused for the wrong origin, RP ID, or without user verification', async t => {
  const user = await createUser(app)
  for (const [what, ceremony] of [
    ['origin', { origin: 'https://evil.example.test' }],
    ['RP ID', { rpId: 'evil.example.test' }],
    ['user verification', { flags: FLAG_UP | FLAG_AT }]
  ] as const) {
    const options = (await registrationOptions(user)).json().data
    const error = assertError(t, await registerVerify(user, { response: new SoftAuthenticator().create(options, ceremony) }), 400, 'VALIDATION_ERROR', what)
    t.equal(error.details?.[0]?.field, 'response', `${what}: the detail names response`)
  }
  t.test("another user's registration challenge", async t => {
    const other = await createUser(app)
    const options = (await registrationOptions(other)).json().data
    assertError(t, await registerVerify(user, { response: new SoftAuthenticator().create(options) }), 400, 'VALIDATION_ERROR')
  })
  t.same(await app.passkeysService.list(user.id), [], 'nothing stored')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/passkeys/register/options' }), 401, 'UNAUTHORIZED', 'options need a login')
  assertError(t, await registerVerify(user, { response: { id: 'x' } }), 400, 'VALIDATION_ERROR', 'a malformed response')
  assertError(t, await registerVerify(user, { response: new SoftAuthenticator().create({ challenge: 'x'.repeat(43), user: { id: 'AA' } }), admin: true }), 400, 'VALIDATION_ERROR', 'an unknown property')
})

t.test('the same credential cannot be registered twice', async t => {
  const user = await createUser(app)
  const { authenticator } = await enrol(user)
  const options = (await registrationOptions(user)).json().data
  t.same(options.excludeCredentials, [{ id: authenticator.id, transports: ['internal', 'hybrid'], type: 'public-key' }], 'excluded in the options')
  assertError(t, await registerVerify(user, { response: authenticator.create(options) }), 409, 'CONFLICT')
})

t.test('deleting a passkey', async t => {
  const user = await createUser(app)
  const other = await createUser(app)
  const { authenticator, passkey } = await enrol(user)
  const { passkey: othersPasskey } = await enrol(other)
  const remove = (who: TestUser, id: string) => as(app, who, { method: 'DELETE', url: `/api/v1/auth/passkeys/${id}` })

  assertError(t, await remove(user, othersPasskey.id), 404, 'NOT_FOUND', "someone else's passkey")
  t.equal((await app.passkeysService.list(other.id)).length, 1, 'still there')
  assertError(t, await remove(user, randomUUID()), 404, 'NOT_FOUND', 'an unknown one')
  assertError(t, await remove(user, 'not-a-uuid'), 400, 'VALIDATION_ERROR', 'a malformed id')
  assertError(t, await app.inject({ method: 'DELETE', url: `/api/v1/auth/passkeys/${passkey.id}` }), 401, 'UNAUTHORIZED')

  const res = await remove(user, passkey.id)
  t.equal(res.statusCode, 204)
  t.same(await app.passkeysService.list(user.id), [])
  t.same((await auditOf(user.id, 'auth.passkey_removed')).map(a => a.changes), [{ passkeyId: passkey.id }])
  assertError(t, await remove(user, passkey.id), 404, 'NOT_FOUND', 'gone')
  assertError(t, (await passkeyLogin(authenticator)).res, 401, 'INVALID_CREDENTIALS', 'it no longer signs in')
})

t.test('login options for an unknown email look like those of a known one', async t => {
  const user = await createUser(app)
  await enrol(user)
  const withoutPasskeys = await createUser(app)
  const known = await loginOptions({ email: user.email })
  const unknown = await loginOptions({ email: `nobody-${randomUUID()}@example.test` })
  const none = await loginOptions({ email: withoutPasskeys.email })
  const shape = (res: typeof known) => {
    const { challengeId, options } = res.json().data
    return {
      keys: Object.keys(options).sort(),
      challengeId: typeof challengeId,
      allow: options.allowCredentials.map((c: { id: string, type: string, transports: string[] }) => ({ idLength: c.id.length, type: c.type, transports: [...c.transports].sort() }))
    }
  }
  for (const res of [known, unknown, none]) t.equal(res.statusCode, 200)
  t.same(shape(unknown), shape(known), 'an unknown email')
  t.same(shape(none), shape(known), 'an account without passkeys')
  const nobody = `nobody-${randomUUID()}@example.test`
  const [first, second] = await Promise.all([loginOptions({ email: nobody }), loginOptions({ email: nobody.toUpperCase() })])
  t.same(first.json().data.options.allowCredentials, second.json().data.options.allowCredentials, 'the same decoy each time, as a real list would be')
  const discoverable = (await loginOptions()).json().data.options
  t.notOk('allowCredentials' in discoverable, 'no email: a discoverable credential')
  assertError(t, await loginOptions({ email: user.email, extra: 1 }), 400, 'VALIDATION_ERROR', 'an unknown property')
})

t.test('a passkey as the second factor (the service function /auth/mfa/verify calls)', async t => {
  const user = await createUser(app)
  const other = await createUser(app)
  const { authenticator, passkey } = await enrol(user)
  const { options } = await app.passkeysService.mfaOptions(user.id)
  t.same(options.allowCredentials?.map(c => c.id), [authenticator.id], "bound to the user's passkeys")
  const response = authenticator.get(options) as Parameters<typeof app.passkeysService.verifyAssertion>[1]
  t.match(await app.passkeysService.verifyAssertion({ mfaUserId: other.id }, response), { ok: false, reason: 'challenge' }, "not another user's challenge")
  t.match(await app.passkeysService.verifyAssertion({ mfaUserId: user.id }, response), { ok: true, userId: user.id, passkeyId: passkey.id })
  t.match(await app.passkeysService.verifyAssertion({ mfaUserId: user.id }, response), { ok: false, reason: 'challenge' }, 'once')
  const { challengeId } = await app.passkeysService.mfaOptions(user.id)
  t.match(await app.passkeysService.verifyAssertion({ challengeId }, response), { ok: false, reason: 'challenge' }, 'a second-factor challenge is no passwordless one')
})

t.test('erasing a user removes its passkeys', async t => {
  const admin = await createUser(app, { roles: ['admin'] })
  const user = await createUser(app)
  const { authenticator } = await enrol(user)
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/erase` })).statusCode, 204)
  t.equal((await db.selectFrom('userPasskeys').select('id').where('userId', '=', user.id).execute()).length, 0, 'no credential left')
  assertError(t, (await passkeyLogin(authenticator)).res, 401, 'INVALID_CREDENTIALS')
})

t.test('a passkey as the second factor of a password login', async t => {
  const user = await createUser(app)
  const { authenticator, passkey } = await enrol(user)
  const status = await as(app, user, { method: 'GET', url: '/api/v1/auth/mfa' })
  t.same(status.json().data.passkeys.map((p: { id: string }) => p.id), [passkey.id], 'GET /auth/mfa lists the passkey')

  const password = () => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: user.password } })
  const first = (await password()).json().data
  t.equal(first.mfaRequired, true, 'the right password alone no longer signs in')
  t.same(first.methods, ['passkey'])
  t.notOk(first.accessToken, 'no token before the second factor')

  assertError(t, await loginOptions({ mfaToken: 'not-a-token' }), 401, 'UNAUTHORIZED', 'options for an unknown mfaToken')
  assertError(t, await loginOptions({ mfaToken: first.mfaToken, email: user.email }), 400, 'VALIDATION_ERROR', 'mfaToken and email together')
  const { options } = (await loginOptions({ mfaToken: first.mfaToken })).json().data
  t.same(options.allowCredentials.map((c: { id: string }) => c.id), [authenticator.id], "bound to the user's passkeys")

  const verify = (payload: object) => app.inject({ method: 'POST', url: '/api/v1/auth/mfa/verify', payload })
  // A wrong assertion (another challenge) is a wrong code: 401, counted, the mfaToken still usable.
  const stale = authenticator.get({ challenge: Buffer.from('not the challenge').toString('base64url') })
  assertError(t, await verify({ mfaToken: first.mfaToken, passkey: stale }), 401, 'INVALID_MFA_CODE', 'an assertion for no challenge')
  const res = await verify({ mfaToken: first.mfaToken, passkey: authenticator.get(options) })
  t.equal(res.statusCode, 200, res.body)
  const pair = res.json().data
  t.same(claimsOf(pair.accessToken).amr, ['pwd', 'passkey'], 'amr ["pwd","passkey"]')
  t.equal((await as(app, { token: pair.accessToken }, { method: 'GET', url: '/api/v1/auth/me' })).statusCode, 200)
  assertError(t, await verify({ mfaToken: first.mfaToken, passkey: authenticator.get(options) }), 401, 'UNAUTHORIZED', 'the mfaToken is spent')

  // An administrator's reset removes the passkey: the password alone signs in again.
  const admin = await createUser(app, { roles: ['admin'] })
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${user.id}/mfa/reset` })).statusCode, 204)
  t.same((await as(app, { token: (await password()).json().data.accessToken }, { method: 'GET', url: '/api/v1/auth/mfa' })).json().data.passkeys, [], 'reset removed the passkey')
})

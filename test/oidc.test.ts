import t, { type Test } from 'tap'
import { decodeJwt } from 'jose'
import type { LightMyRequestResponse } from 'fastify'
import { as, assertError, build, createUser, freePort, uniqueEmail } from './helper.js'
import { startFakeProvider, startOidcProvider, type IdTokenFault, type TestAccount } from './oidc-providers.js'
import { APP, CLIENT, PUBLIC_URL, callbackOf, oidcFlow, redirectParams, setCookiesOf, throughProvider } from './oidc-flow.js'

const OTHER_APP = 'http://other.example.test/cb'

const idp = await startOidcProvider({ ...CLIENT, redirectUri: callbackOf('idp') })
const fake = await startFakeProvider({ clientId: CLIENT.clientId })
const nothingThere = `http://127.0.0.1:${await freePort()}`
t.teardown(() => Promise.all([idp.close(), fake.close()]))

const app = await build(t, {}, {
  OIDC_PROVIDERS: JSON.stringify([
    { name: 'idp', issuer: idp.issuer, ...CLIENT },
    { name: 'fake', issuer: fake.issuer, ...CLIENT, scopes: ['openid', 'email'] },
    { name: 'down', issuer: nothingThere, ...CLIENT }
  ]),
  OIDC_REDIRECT_URIS: `${APP},${OTHER_APP}`,
  PUBLIC_URL
})
const db = app.database.db

const { startFlow, callback } = oidcFlow(options => app.inject(options))

/** A whole sign-in with the real provider as the account `sub`: the app's final redirect. */
async function signIn (sub: string) {
  idp.next(sub)
  const { appJar, providerUrl } = await startFlow('idp')
  return callback(await throughProvider(providerUrl), appJar)
}

const exchange = (code: string | null) => app.inject({ method: 'POST', url: '/api/v1/auth/oidc/exchange', payload: { code } })

async function signedIn (t: Test, res: LightMyRequestResponse) {
  const { code, error } = redirectParams(res)
  t.equal(error, null, 'no error in the redirect')
  t.match(code, /^[A-Za-z0-9_-]{20,}$/, 'a code in the redirect')
  const answer = await exchange(code)
  t.equal(answer.statusCode, 200, 'the code is exchanged for the login answer')
  return answer.json().data as { accessToken: string, refreshToken: string, user: { id: string, email: string, emailVerified: boolean, roles: string[] } }
}

const verifiedAccount = (extra: TestAccount = {}): TestAccount => ({ email: uniqueEmail('oidc'), email_verified: true, given_name: 'Ada', family_name: 'Lovelace', ...extra })

async function verifiedLocalUser () {
  const user = await createUser(app)
  await db.updateTable('users').set({ emailVerified: true }).where('id', '=', user.id).execute()
  return user
}

const identitiesOf = (userId: string) => db.selectFrom('userIdentities').selectAll().where('userId', '=', userId).execute()
const usersWithEmail = (email: string) => db.selectFrom('users').select('id').where('email', '=', email).execute()
const auditOf = (userId: string, action: string) => db.selectFrom('userAuditLog').selectAll().where('userId', '=', userId).where('action', '=', action).execute()

t.test('the providers are listed by name', async t => {
  const res = await app.inject({ method: 'GET', url: '/api/v1/auth/oidc/providers' })
  t.equal(res.statusCode, 200)
  t.same(res.json().data, [{ name: 'idp' }, { name: 'fake' }, { name: 'down' }])
})

t.test('authorize: 302 to the provider with PKCE S256, state and nonce, and a flow cookie', async t => {
  const { res, appJar, providerUrl } = await startFlow('idp')
  t.equal(providerUrl.origin, idp.issuer, 'to the provider')
  const params = providerUrl.searchParams
  t.equal(params.get('client_id'), CLIENT.clientId)
  t.equal(params.get('redirect_uri'), callbackOf('idp'), 'the callback under PUBLIC_URL')
  t.equal(params.get('response_type'), 'code')
  t.equal(params.get('code_challenge_method'), 'S256')
  t.match(params.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/)
  t.ok(params.get('state') && params.get('nonce'), 'state and nonce')
  t.equal(params.get('scope'), 'openid email profile', 'the default scopes')
  const cookie = setCookiesOf(res).find(c => c.startsWith('oidc_flow='))!
  t.ok(appJar.get('oidc_flow'), 'the flow cookie is set')
  t.match(cookie, /HttpOnly/i)
  t.match(cookie, /SameSite=Lax/i)
  t.match(cookie, /Path=\/api\/v1\/auth\/oidc/)
  t.notMatch(cookie, /Secure/i, 'not Secure when PUBLIC_URL is http')
  t.notOk(cookie.includes(params.get('state')!), 'the cookie is not the state')
  const stored = await db.selectFrom('oidcAuthRequests').selectAll().execute()
  t.notOk(stored.some(r => r.stateHash === params.get('state') || r.browserHash === appJar.get('oidc_flow')), 'state and cookie are stored only hashed')
})

t.test('authorize: unknown provider 404, a redirectUri off the list 400, a provider down 503 with Retry-After', async t => {
  assertError(t, await app.inject({ method: 'GET', url: `/api/v1/auth/oidc/nope/authorize?redirectUri=${encodeURIComponent(APP)}` }), 404, 'NOT_FOUND')
  const off = assertError(t, await app.inject({ method: 'GET', url: `/api/v1/auth/oidc/idp/authorize?redirectUri=${encodeURIComponent('http://evil.example.test/cb')}` }), 400, 'VALIDATION_ERROR')
  t.equal(off.details?.[0].field, 'redirectUri')
  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/auth/oidc/idp/authorize' }), 400, 'VALIDATION_ERROR', 'redirectUri is required')
  const down = await app.inject({ method: 'GET', url: `/api/v1/auth/oidc/down/authorize?redirectUri=${encodeURIComponent(APP)}` })
  assertError(t, down, 503, 'SERVICE_UNAVAILABLE')
  t.ok(Number(down.headers['retry-after']) > 0, 'Retry-After')
  t.equal(down.headers['set-cookie'], undefined, 'no flow is started')
})

t.test('a new user is created, then signs in again through the same identity', async t => {
  const account = verifiedAccount()
  const sub = idp.account(account)
  const first = await signedIn(t, await signIn(sub))
  t.equal(first.user.email, account.email)
  t.equal(first.user.emailVerified, true, 'emailVerified from the provider')
  t.same(first.user.roles, ['user'])
  t.same(decodeJwt(first.accessToken).amr, ['oidc'], 'the access token carries amr oidc')
  const me = await as(app, { token: first.accessToken }, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal(me.json().data.firstName, 'Ada', 'the names come from the provider')
  t.equal(me.json().data.lastName, 'Lovelace')
  const logins = await auditOf(first.user.id, 'auth.login')
  t.same(logins.map(l => l.changes), [{ method: 'oidc:idp', amr: ['oidc'] }], 'auth.login with method oidc:idp')
  t.equal((await auditOf(first.user.id, 'auth.identity_linked')).length, 1, 'auth.identity_linked')

  const again = await signedIn(t, await signIn(sub))
  t.equal(again.user.id, first.user.id, 'the same user, found by (provider, sub)')
  t.equal((await identitiesOf(first.user.id)).length, 1, 'one identity')
  t.equal((await usersWithEmail(account.email!)).length, 1, 'one user')

  // No password: a password login fails as a wrong password does; change-password is a clean 401.
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: account.email, password: 'Whatever-pass-1' } }), 401, 'INVALID_CREDENTIALS')
  assertError(t, await as(app, { token: first.accessToken }, {
    method: 'POST', url: '/api/v1/auth/password/change', payload: { currentPassword: 'Whatever-pass-1', newPassword: 'Brand-new-pass-9' }
  }), 401, 'INVALID_CREDENTIALS', 'change-password without a password')
})

t.test('a provider-unverified email creates an unverified user, with a verification email queued', async t => {
  const account = verifiedAccount({ email_verified: false })
  const answer = await signedIn(t, await signIn(idp.account(account)))
  t.equal(answer.user.emailVerified, false)
  const outbox = await db.selectFrom('emailOutbox').select('template').where('toAddress', '=', account.email!).execute()
  t.same(outbox.map(e => e.template), ['verify_email'])
})

t.test('links to the local user when both the provider and the account verified the email', async t => {
  const local = await verifiedLocalUser()
  const answer = await signedIn(t, await signIn(idp.account(verifiedAccount({ email: local.email }))))
  t.equal(answer.user.id, local.id, 'signed in as the local user')
  t.equal((await identitiesOf(local.id)).length, 1, 'the identity is linked')
  t.same((await auditOf(local.id, 'auth.identity_linked')).map(a => a.changes), [{ provider: 'idp', linkedBy: 'verified_email' }])
  // The password still works too.
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: local.email, password: local.password } })).statusCode, 200)
})

t.test('no link and no duplicate when the provider has not verified the email', async t => {
  const local = await verifiedLocalUser()
  const { error, code } = redirectParams(await signIn(idp.account(verifiedAccount({ email: local.email, email_verified: false }))))
  t.equal(error, 'account_exists')
  t.equal(code, null)
  t.equal((await identitiesOf(local.id)).length, 0, 'nothing linked')
  t.equal((await usersWithEmail(local.email)).length, 1, 'no second user')
})

t.test('no link and no duplicate when the local account has not verified the email', async t => {
  const local = await createUser(app)
  const { error } = redirectParams(await signIn(idp.account(verifiedAccount({ email: local.email }))))
  t.equal(error, 'account_exists')
  t.equal((await identitiesOf(local.id)).length, 0, 'nothing linked')
  t.equal((await usersWithEmail(local.email)).length, 1, 'no second user')
})

t.test('a state works once', async t => {
  const sub = idp.account(verifiedAccount())
  idp.next(sub)
  const { appJar, providerUrl } = await startFlow('idp')
  const back = await throughProvider(providerUrl)
  const first = redirectParams(await callback(back, appJar))
  t.ok(first.code, 'the first callback signs in')
  const replay = redirectParams(await callback(back, appJar))
  t.equal(replay.error, 'invalid_state', 'the same callback again is refused')
  t.equal(replay.code, null)
  t.equal(replay.location.origin + replay.location.pathname, APP)

  // Two callbacks with one state at once: exactly one spends it.
  idp.next(sub)
  const racing = await startFlow('idp')
  const racingBack = await throughProvider(racing.providerUrl)
  const answers = await Promise.all([callback(racingBack, racing.appJar), callback(racingBack, racing.appJar), callback(racingBack, racing.appJar)])
  t.same(answers.map(a => redirectParams(a).error).sort(), ['invalid_state', 'invalid_state', null], 'one wins, the others are refused')
})

t.test('a wrong state, or a callback without the flow cookie or with another browser\'s, is refused and spends nothing else', async t => {
  const sub = idp.account(verifiedAccount())
  idp.next(sub)
  const { appJar, providerUrl } = await startFlow('idp', OTHER_APP)
  const back = await throughProvider(providerUrl)

  const forged = new URL(back)
  forged.searchParams.set('state', 'not-a-state-we-issued')
  const wrong = redirectParams(await callback(forged, appJar))
  t.equal(wrong.error, 'invalid_state', 'an unknown state')
  t.equal(wrong.location.origin + wrong.location.pathname, APP, 'an unknown state goes to the first redirect URI')

  const other = await startFlow('idp')
  const noCookie = redirectParams(await callback(back))
  t.equal(noCookie.error, 'invalid_state', 'no cookie')
  t.equal(noCookie.location.origin + noCookie.location.pathname, OTHER_APP, "the flow's own redirect URI")
  t.equal(redirectParams(await callback(back, appJar)).error, 'invalid_state', 'the state was spent by the refused attempt')

  // A second flow, its callback brought with another browser's cookie.
  idp.next(sub)
  const back2 = await throughProvider(other.providerUrl)
  t.equal(redirectParams(await callback(back2, appJar)).error, 'invalid_state', "another browser's cookie")
  const withoutState = new URL(back2)
  withoutState.searchParams.delete('state')
  t.equal(redirectParams(await callback(withoutState, other.appJar)).error, 'invalid_state', 'no state at all')
  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/auth/oidc/nope/callback?code=x&state=y' }), 404, 'NOT_FOUND', 'unknown provider')
})

t.test('a state expires', async t => {
  const sub = idp.account(verifiedAccount())
  idp.next(sub)
  const { appJar, providerUrl } = await startFlow('idp')
  const back = await throughProvider(providerUrl)
  await db.updateTable('oidcAuthRequests').set({ expiresAt: new Date(Date.now() - 1000) }).execute()
  t.equal(redirectParams(await callback(back, appJar)).error, 'invalid_state')
})

t.test('the provider refusing comes back as error=access_denied', async t => {
  idp.deny()
  const { appJar, providerUrl } = await startFlow('idp')
  const { error, code } = redirectParams(await callback(await throughProvider(providerUrl), appJar))
  t.equal(error, 'access_denied')
  t.equal(code, null)
})

t.test('the exchange code is single use, expires, and is stored only hashed', async t => {
  const sub = idp.account(verifiedAccount())
  const { code } = redirectParams(await signIn(sub))
  const stored = await db.selectFrom('oidcLoginCodes').select('codeHash').execute()
  t.notOk(stored.some(r => r.codeHash === code), 'the code itself is not stored')
  t.equal((await exchange(code)).statusCode, 200)
  assertError(t, await exchange(code), 400, 'INVALID_TOKEN', 'a spent code')
  assertError(t, await exchange('never-issued-code'), 400, 'INVALID_TOKEN', 'an unknown code')

  const late = redirectParams(await signIn(sub)).code
  await db.updateTable('oidcLoginCodes').set({ expiresAt: new Date(Date.now() - 1000) }).execute()
  assertError(t, await exchange(late), 400, 'INVALID_TOKEN', 'an expired code')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/auth/oidc/exchange', payload: {} }), 400, 'VALIDATION_ERROR', 'no code')

  const racing = redirectParams(await signIn(sub)).code
  const answers = await Promise.all([exchange(racing), exchange(racing), exchange(racing)])
  t.same(answers.map(a => a.statusCode).sort(), [200, 400, 400], 'of racing exchanges one wins')
})

t.test('identities: listed, unlinked, and the last way to sign in is kept (409)', async t => {
  const account = verifiedAccount()
  const first = await signedIn(t, await signIn(idp.account(account)))
  // A second identity (another sub, same verified email) links to the same user.
  const second = await signedIn(t, await signIn(idp.account({ ...account })))
  t.equal(second.user.id, first.user.id)
  const user = { token: first.accessToken }

  const listed = await as(app, user, { method: 'GET', url: '/api/v1/auth/identities' })
  t.equal(listed.statusCode, 200)
  const identities = listed.json().data as Array<{ id: string, provider: string, subject: string, email: string }>
  t.equal(identities.length, 2)
  t.ok(identities.every(i => i.provider === 'idp' && i.email === account.email && i.subject), 'provider, subject, email')

  const stranger = await createUser(app)
  assertError(t, await as(app, stranger, { method: 'DELETE', url: `/api/v1/auth/identities/${identities[0].id}` }), 404, 'NOT_FOUND', "someone else's identity")
  t.same((await as(app, stranger, { method: 'GET', url: '/api/v1/auth/identities' })).json().data, [], 'others see none of them')
  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/auth/identities' }), 401, 'UNAUTHORIZED')
  assertError(t, await as(app, user, { method: 'DELETE', url: '/api/v1/auth/identities/not-a-uuid' }), 400, 'VALIDATION_ERROR')

  t.equal((await as(app, user, { method: 'DELETE', url: `/api/v1/auth/identities/${identities[0].id}` })).statusCode, 204)
  assertError(t, await as(app, user, { method: 'DELETE', url: `/api/v1/auth/identities/${identities[1].id}` }), 409, 'CONFLICT', 'the last way to sign in')
  t.equal((await identitiesOf(first.user.id)).length, 1, 'the last identity stays')
  t.same((await auditOf(first.user.id, 'auth.identity_unlinked')).map(a => a.changes), [{ provider: 'idp' }])

  // With a password, the only identity can go.
  const local = await verifiedLocalUser()
  await signedIn(t, await signIn(idp.account(verifiedAccount({ email: local.email }))))
  const [linked] = await identitiesOf(local.id)
  t.equal((await as(app, local, { method: 'DELETE', url: `/api/v1/auth/identities/${linked.id}` })).statusCode, 204)
})

t.test('a suspended account linked to the identity cannot sign in', async t => {
  const sub = idp.account(verifiedAccount())
  const answer = await signedIn(t, await signIn(sub))
  await db.updateTable('users').set({ status: 'suspended' }).where('id', '=', answer.user.id).execute()
  t.equal(redirectParams(await signIn(sub)).error, 'account_unavailable')
})

t.test('an ID token with a wrong nonce, audience, issuer, signature or expiry is refused: no code, no user, no session', async t => {
  const run = async (fault: IdTokenFault) => {
    const email = uniqueEmail(`fake-${fault}`)
    const { appJar, providerUrl } = await startFlow('fake')
    t.equal(providerUrl.searchParams.get('scope'), 'openid email', "the provider's own scopes")
    const nonce = providerUrl.searchParams.get('nonce')!
    fake.answer({ claims: { sub: `sub-${email}`, email, email_verified: true }, nonce, fault })
    const back = new URL(callbackOf('fake'))
    back.searchParams.set('code', 'a-code-from-the-fake')
    back.searchParams.set('state', providerUrl.searchParams.get('state')!)
    return { res: await callback(back, appJar), email }
  }
  const control = await run('none')
  t.ok(redirectParams(control.res).code, 'the fake provider, behaving, signs in (so the refusals below are the faults)')
  for (const fault of ['wrong_nonce', 'wrong_audience', 'wrong_issuer', 'wrong_key', 'expired'] as const) {
    const { res, email } = await run(fault)
    const { error, code } = redirectParams(res)
    t.equal(error, 'authentication_failed', `${fault}: error`)
    t.equal(code, null, `${fault}: no code`)
    t.equal((await usersWithEmail(email)).length, 0, `${fault}: no user`)
  }
  const failures = await db.selectFrom('userAuditLog').select('changes').where('action', '=', 'auth.login_failed').execute()
  t.ok(failures.filter(f => JSON.stringify(f.changes).includes('"method":"oidc:fake"')).length >= 5, 'each is audited as auth.login_failed')
})

t.test('no secret, token or code reaches the audit trail', async t => {
  const rows = await db.selectFrom('userAuditLog').select('changes').where('action', 'like', 'auth.%').execute()
  const text = JSON.stringify(rows)
  t.notOk(/code_verifier|nonce|id_token|access_token|a-client-secret/.test(text))
})

t.test('with an https PUBLIC_URL the flow cookie is Secure and the callback is https', async t => {
  const secure = await build(t, {}, {
    OIDC_PROVIDERS: JSON.stringify([{ name: 'idp', issuer: idp.issuer, ...CLIENT }]),
    OIDC_REDIRECT_URIS: APP,
    PUBLIC_URL: 'https://api.example.test'
  })
  const res = await secure.inject({ method: 'GET', url: `/api/v1/auth/oidc/idp/authorize?redirectUri=${encodeURIComponent(APP)}` })
  t.equal(res.statusCode, 302)
  t.match(setCookiesOf(res).find(c => c.startsWith('oidc_flow=')), /;\s*Secure/i)
  t.equal(new URL(String(res.headers.location)).searchParams.get('redirect_uri'), 'https://api.example.test/api/v1/auth/oidc/idp/callback')
})

t.test('erasing a user removes its identities: the same provider account then makes a new user', async t => {
  await createUser(app, { roles: ['admin'] }) // erasure keeps an active administrator
  const sub = idp.account(verifiedAccount())
  const first = await signedIn(t, await signIn(sub))
  const erase = await as(app, { token: first.accessToken }, { method: 'POST', url: `/api/v1/users/${first.user.id}/erase` })
  t.equal(erase.statusCode, 204, erase.body)
  t.equal((await identitiesOf(first.user.id)).length, 0, 'no identity is left')
  const again = await signedIn(t, await signIn(sub))
  t.not(again.user.id, first.user.id, 'a new user')
})

t.test('an enrolled second factor still applies: the exchange answers mfaRequired, and TOTP finishes the login', async t => {
  const { generate } = await import('otplib')
  const sub = idp.account(verifiedAccount())
  const first = await signedIn(t, await signIn(sub))
  const user = { token: first.accessToken }
  const { secret } = (await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup' })).json().data
  // Codes of the previous and the next step: the confirm spends its step, so verify needs a later one.
  const code = (offset: number) => generate({ secret, epoch: (Math.floor(Date.now() / 30_000) + offset) * 30 + 1 })
  t.equal((await as(app, user, { method: 'POST', url: '/api/v1/auth/mfa/totp/confirm', payload: { code: await code(-1) } })).statusCode, 200)

  const { code: exchangeCode } = redirectParams(await signIn(sub))
  const answer = (await exchange(exchangeCode)).json().data
  t.equal(answer.mfaRequired, true, 'no token pair from the provider alone')
  t.notOk(answer.accessToken)
  t.same(answer.methods, ['totp', 'recovery_code'])
  const verified = await app.inject({ method: 'POST', url: '/api/v1/auth/mfa/verify', payload: { mfaToken: answer.mfaToken, code: await code(0) } })
  t.equal(verified.statusCode, 200, verified.body)
  t.same(decodeJwt(verified.json().data.accessToken).amr, ['oidc', 'otp'], 'amr oidc + otp')
})

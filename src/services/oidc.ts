import { timingSafeEqual } from 'node:crypto'
import type { Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import type { Database } from '../db/types.js'
import { conflict, invalidToken, notFound, unauthorized, validationError } from '../errors.js'
import { oidcRandom, ProviderSignInError, type OidcClients, type ProviderClaims } from '../lib/oidc-client.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import { insertAudit } from '../repositories/audit.js'
import * as identities from '../repositories/identities.js'
import * as users from '../repositories/users.js'
import type { Identity } from '../../schemas/oidc.js'
import type { UserStatus } from '../../schemas/user.js'
import type { AuthService, LoginAnswer } from './auth.js'
import type { RequestContext } from './context.js'
import { queueEmailVerification } from './email-verification.js'
import type { EmailOutbox } from './email.js'

/** A browser flow must come back from the provider within this; the code it brings back is exchanged within LOGIN_CODE_TTL_MS. */
const AUTH_REQUEST_TTL_MS = 10 * 60_000
const LOGIN_CODE_TTL_MS = 60_000

/**
 * Why a callback sends the browser back without a code (its `error` parameter):
 * - invalid_state: the state is unknown, spent or expired, or the browser lacks the cookie of the flow it started;
 * - access_denied / provider_error: the provider refused or failed;
 * - authentication_failed: the provider's answer did not hold (ID token issuer, audience, nonce, expiry or signature);
 * - email_required: the provider gave no usable email, so no account can be made;
 * - account_exists: a local account has that email but it cannot be linked, as the provider or the account has
 *   not verified it (no second account is made for the address: sign in with a password and verify it first);
 * - account_unavailable: the account linked or matched is suspended or deleted;
 * - email_not_verified: REQUIRE_EMAIL_VERIFICATION is on and the account is still pending.
 */
export type CallbackError = ProviderSignInError['reason'] | 'invalid_state' | 'email_required' | 'account_exists' | 'account_unavailable' | 'email_not_verified'

/** What the authorize route answers: where to send the browser, and the secret its cookie carries back to the callback. */
export interface AuthorizeAnswer { location: string, browserSecret: string }

const sameHash = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

const isUniqueViolation = (err: unknown) => (err as { code?: string })?.code === '23505'

function redirectTo (uri: string, params: Record<string, string>) {
  const url = new URL(uri)
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value)
  return url.href
}

class SignInRefused extends Error {
  constructor (readonly reason: CallbackError) { super(reason) }
}

export interface OidcServiceDeps {
  db: DB
  config: Config
  clients: OidcClients
  authService: AuthService
  emails: EmailOutbox
}

export function createOidcService ({ db, config, clients, authService, emails }: OidcServiceDeps) {
  function providerOf (name: string) {
    const provider = clients.find(name)
    if (!provider) throw notFound('Sign-in provider')
    return provider
  }

  /** A user for the account the provider vouches for: the one linked, a verified local one to link, or a new one. */
  async function resolveUser (trx: Transaction<Database>, ctx: RequestContext, provider: string, claims: ProviderClaims): Promise<{ userId: string, status: UserStatus }> {
    const linked = await identities.findIdentity(trx, provider, claims.subject)
    if (linked) {
      if (!linked.live || linked.status === 'suspended') throw new SignInRefused('account_unavailable')
      return linked
    }
    if (!claims.email) throw new SignInRefused('email_required')
    const identity = { provider, subject: claims.subject, email: claims.email }
    const local = await identities.findUserByEmail(trx, claims.email)
    if (local) {
      if (local.status === 'suspended') throw new SignInRefused('account_unavailable')
      // Linking on an email either side has not verified would hand the account to whoever typed the address.
      if (!claims.emailVerified || !local.emailVerified) throw new SignInRefused('account_exists')
      await identities.insertIdentity(trx, { ...identity, userId: local.id })
      await insertAudit(trx, { ...ctx, actorId: local.id }, { action: 'auth.identity_linked', userId: local.id, changes: { provider, linkedBy: 'verified_email' } })
      return { userId: local.id, status: local.status }
    }
    const firstName = (claims.firstName ?? claims.email.split('@')[0]).slice(0, 100)
    const lastName = (claims.lastName ?? '-').slice(0, 100)
    const status = config.requireEmailVerification && !claims.emailVerified ? 'pending' : 'active'
    const { id: userId } = await users.insertUserWithRoles(trx, { email: claims.email, passwordHash: null, firstName, lastName, status, emailVerified: claims.emailVerified }, ['user'])
    if (!claims.emailVerified) await queueEmailVerification(trx, emails, userId, claims.email)
    await identities.insertIdentity(trx, { ...identity, userId })
    const audit = { ...ctx, actorId: userId }
    await insertAudit(trx, audit, { action: 'user.created', userId, changes: { email: claims.email, firstName, lastName, status, roles: ['user'], via: `oidc:${provider}` } })
    await insertAudit(trx, audit, { action: 'auth.identity_linked', userId, changes: { provider, linkedBy: 'new_account' } })
    return { userId, status }
  }

  /** The signed-in user's one-time code, or why there is none. Two callbacks racing for one new account: the loser finds the winner's link. */
  async function signInCode (ctx: RequestContext, provider: string, claims: ProviderClaims): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction().execute(async trx => {
          const { userId, status } = await resolveUser(trx, ctx, provider, claims)
          if (status === 'pending' && config.requireEmailVerification) throw new SignInRefused('email_not_verified')
          const code = randomToken()
          await identities.insertLoginCode(trx, { codeHash: hashToken(code), userId, provider, expiresAt: new Date(Date.now() + LOGIN_CODE_TTL_MS) })
          return code
        })
      } catch (err) {
        if (attempt === 1 && isUniqueViolation(err)) continue
        throw err
      }
    }
  }

  async function refused (ctx: RequestContext, provider: string, reason: CallbackError, redirectUri: string) {
    await insertAudit(db, ctx, { action: 'auth.login_failed', userId: null, changes: { method: `oidc:${provider}`, reason } })
    return redirectTo(redirectUri, { error: reason })
  }

  return {
    providers: () => clients.names().map(name => ({ name })),

    /** Starts a browser flow: the request (state, nonce, PKCE verifier) stored server-side, bound to the browser by a cookie secret. */
    async authorize (providerName: string, redirectUri: string): Promise<AuthorizeAnswer> {
      const provider = providerOf(providerName)
      if (!config.oidcRedirectUris.includes(redirectUri)) {
        throw validationError('redirectUri is not an allowed return address', [{ field: 'redirectUri', message: 'is not one of OIDC_REDIRECT_URIS' }])
      }
      const checks = { state: oidcRandom.state(), nonce: oidcRandom.nonce(), codeVerifier: oidcRandom.codeVerifier() }
      const location = await clients.authorizationUrl(provider, checks)
      const browserSecret = randomToken()
      await identities.insertAuthRequest(db, {
        stateHash: hashToken(checks.state),
        browserHash: hashToken(browserSecret),
        provider: provider.name,
        nonce: checks.nonce,
        codeVerifier: checks.codeVerifier,
        redirectUri,
        expiresAt: new Date(Date.now() + AUTH_REQUEST_TTL_MS)
      })
      return { location, browserSecret }
    },

    /**
     * The provider's redirect back: the state is spent (once, whatever follows), the browser must
     * hold the flow's cookie, the code is exchanged and the ID token validated, then the user is
     * found, linked or created. Answers where to send the browser: the flow's redirectUri with a
     * one-time code, or with error=... (an unknown state has no redirectUri: the first of
     * OIDC_REDIRECT_URIS then).
     */
    async callback (ctx: RequestContext, providerName: string, query: URLSearchParams, browserSecret: string | undefined): Promise<string> {
      const provider = providerOf(providerName)
      const state = query.get('state')
      const request = state ? await identities.spendAuthRequest(db, hashToken(state)) : undefined
      if (!state || !request || request.provider !== provider.name) return refused(ctx, provider.name, 'invalid_state', request?.redirectUri ?? config.oidcRedirectUris[0])
      if (!browserSecret || !sameHash(hashToken(browserSecret), request.browserHash)) return refused(ctx, provider.name, 'invalid_state', request.redirectUri)
      try {
        const claims = await clients.completeSignIn(provider, query, { state, nonce: request.nonce, codeVerifier: request.codeVerifier })
        const code = await signInCode(ctx, provider.name, claims)
        return redirectTo(request.redirectUri, { code })
      } catch (err) {
        if (err instanceof ProviderSignInError || err instanceof SignInRefused) return refused(ctx, provider.name, err.reason, request.redirectUri)
        throw err
      }
    },

    /** The callback's one-time code for the login answer (60 s, once). */
    async exchange (ctx: RequestContext, code: string): Promise<LoginAnswer> {
      const row = await identities.spendLoginCode(db, hashToken(code))
      if (!row) throw invalidToken('The code is invalid, spent or expired')
      return authService.signIn(ctx, row.userId, { amr: ['oidc'], method: `oidc:${row.provider}` })
    },

    async list (ctx: RequestContext): Promise<Identity[]> {
      if (!ctx.actor) throw unauthorized()
      const rows = await identities.listIdentities(db, ctx.actor.id)
      return rows.map(row => ({ ...row, createdAt: row.createdAt.toISOString() }))
    },

    /** Unlinks one of the caller's identities, unless it is the last way the caller can sign in (no password, no other identity). */
    async unlink (ctx: RequestContext, id: string) {
      const actor = ctx.actor
      if (!actor) throw unauthorized()
      await db.transaction().execute(async trx => {
        // The user's row is locked: two unlinks racing cannot each leave the other as the last one and remove both.
        const methods = await identities.lockSignInMethods(trx, actor.id)
        if (!methods) throw unauthorized()
        const removed = await identities.deleteIdentity(trx, actor.id, id)
        if (!removed) throw notFound('Identity')
        if (!methods.hasPassword && await identities.countIdentities(trx, actor.id) === 0) {
          throw conflict('This is your last way to sign in: set a password (password reset) or link another provider first')
        }
        await insertAudit(trx, ctx, { action: 'auth.identity_unlinked', userId: actor.id, changes: { provider: removed.provider } })
      })
    }
  }
}

export type OidcService = ReturnType<typeof createOidcService>

import type { Config } from '../config.js'
import { NO_METRICS, type AppMetrics } from '../lib/app-metrics.js'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { DB } from '../db/connect.js'
import {
  forbidden, invalidCredentials, invalidToken, notFound, tokenReused, unauthorized, validationError
} from '../errors.js'
import { createPasswordPolicy, type PasswordHasher, type PasswordPolicy } from '../lib/password.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import type { AttemptOutcome } from '../lib/login-attempts.js'
import type { LoginGuard } from './login-throttle.js'
import { createMemoryTtlCache, type TtlCache } from '../lib/ttl-cache.js'
import { auditRow, insertAudit } from '../repositories/audit.js'
import * as sessions from '../repositories/sessions.js'
import * as tokens from '../repositories/tokens.js'
import * as users from '../repositories/users.js'
import type { Executor, UserWithRelationsRow } from '../repositories/users.js'
import type { Permission, Register, Session, TokenPair } from '../../schemas/auth.js'
import type { User } from '../../schemas/user.js'
import type { RequestContext } from './context.js'
import { toUser, type UsersService } from './users.js'
import type { ConsentsService } from './consents.js'
import { queueEmailVerification } from './email-verification.js'
import type { EmailOutbox } from './email.js'
import { methodsOf, type MfaService, type SecondFactor } from './mfa.js'

export type { LoginAttempt, LoginGuard } from './login-throttle.js'
import * as mfaRecords from '../repositories/mfa.js'
import type { MfaChallenge, MfaVerify } from '../../schemas/mfa.js'

/** amr: how the login was authenticated (RFC 8176 names: pwd, otp, ...). Older tokens lack it. */
export interface AccessClaims { sub: string, sid: string, typ: 'access', amr?: string[] }

/** Factors that already prove more than a password: a login made with one needs no second step. */
const STRONG_FACTORS = new Set(['otp', 'passkey'])

/** Which second factors a user has enrolled, as findMfaState reads them. */
type MfaState = Parameters<typeof methodsOf>[0]

/**
 * How signIn's caller established the identity: amr as the access token will carry it (['pwd'],
 * ['passkey'], ['oidc']), the auth.login row's changes.method (password, passkey, oidc:<name>,
 * invitation) and anything that row should add.
 */
export interface SignInOptions { amr: string[], method: string, audit?: Record<string, unknown> }

export type LoginAnswer = TokenPair | MfaChallenge

const PASSWORD_RESET_TTL_MS = 3600_000
const MFA_TOKEN_INVALID = 'The MFA token is invalid, spent or expired; log in again'

const openLoginGuard: LoginGuard = {
  begin: async () => ({ end: async () => false })
}

export interface AuthServiceDeps {
  db: DB
  compiled: CompiledQueries
  config: Config
  hasher: PasswordHasher
  usersService: UsersService
  consentsService: ConsentsService
  emails: EmailOutbox
  mfaService: MfaService
  signAccessToken: (claims: AccessClaims) => string
  loginGuard?: LoginGuard
  /**
   * Answers of recent rotations by spent-token hash, for REFRESH_REUSE_GRACE. In-process by
   * default; the app passes one shared through Redis when REDIS_URL is set.
   */
  refreshGraceCache?: TtlCache<TokenPair>
  metrics?: AppMetrics
  /** Every new password's check (policy, breaches); the policy alone by default. */
  passwordPolicy?: PasswordPolicy
}

export function createAuthService ({
  db, compiled, config, hasher, usersService, consentsService, emails, mfaService, signAccessToken, loginGuard = openLoginGuard, refreshGraceCache = createMemoryTtlCache<TokenPair>(),
  metrics = NO_METRICS, passwordPolicy = createPasswordPolicy()
}: AuthServiceDeps) {
  /** The answer of a login or a refresh: an access token bound to the session, its refresh token and the user. */
  function tokenPair (user: UserWithRelationsRow, sessionId: string, refreshToken: string, amr: string[]): TokenPair {
    return {
      accessToken: signAccessToken({ sub: user.id, sid: sessionId, typ: 'access', amr }),
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: Math.round(config.jwtExpirySec),
      user: toUser(user)
    }
  }

  /**
   * The new login itself, in one statement: the last login, the session (with its amr, kept by its
   * refreshes) and its first refresh token, auth.login with the method. Only a user who may log in
   * gets one: live, not suspended, and verified when REQUIRE_EMAIL_VERIFICATION says so. In the
   * caller's transaction when given one.
   */
  async function startLogin (ex: Executor, ctx: RequestContext, userId: string, { amr, method, audit }: SignInOptions): Promise<TokenPair> {
    const refreshToken = randomToken()
    const started = await sessions.startLogin(ex, compiled, {
      userId,
      allowPending: !config.requireEmailVerification,
      amr,
      userAgent: ctx.userAgent,
      ip: ctx.ip,
      tokenHash: hashToken(refreshToken),
      expiresAt: new Date(Date.now() + config.refreshTokenExpirySec * 1000)
    }, auditRow({ ...ctx, actorId: userId }, { action: 'auth.login', userId, changes: { method, amr, ...audit } }))
    if (!started) {
      const user = await users.findUserById(ex, compiled, userId)
      if (user?.status === 'pending') throw forbidden('Verify your email address before logging in')
      throw unauthorized('This account cannot sign in')
    }
    return tokenPair(started, started.sessionId, refreshToken, amr)
  }

  /**
   * Finishes a login for an identity a first factor has established (a password, a passkey, an
   * OpenID Connect provider): the caller has checked the credential. Issues the token pair, with
   * `amr` in the access token and kept by its refreshes; or, when the user has a second factor
   * enrolled and `amr` holds no strong factor yet (otp, passkey), answers mfaRequired with a
   * single-use mfaToken for POST /auth/mfa/verify, which finishes it.
   */
  async function signIn (ctx: RequestContext, userId: string, options: SignInOptions, mfaState?: MfaState): Promise<LoginAnswer> {
    const methods = options.amr.some(factor => STRONG_FACTORS.has(factor)) ? [] : mfaState ? methodsOf(mfaState) : await mfaService.enrolledMethods(userId)
    if (methods.length > 0) {
      const mfaToken = randomToken()
      const expiresAt = new Date(Date.now() + config.mfaTokenTtlSec * 1000)
      await mfaRecords.insertMfaChallenge(db, { userId, tokenHash: hashToken(mfaToken), amr: options.amr, method: options.method, expiresAt })
      metrics.login('mfa_required')
      return { mfaRequired: true, mfaToken, expiresIn: Math.max(1, Math.round(config.mfaTokenTtlSec)), methods }
    }
    const pair = await startLogin(db, ctx, userId, options)
    metrics.login('success')
    return pair
  }

  function actorOf (ctx: RequestContext) {
    if (!ctx.actor) throw unauthorized()
    return ctx.actor
  }

  /** Why a refresh token could not be rotated: a replay (reuse or grace), or simply not valid. */
  async function refusedRefresh (ctx: RequestContext, tokenHash: string): Promise<TokenPair> {
    const token = await sessions.findRefreshToken(db, tokenHash)
    if (!token || token.spentAt === null) throw unauthorized('The refresh token is invalid or expired')
    if (config.refreshReuseGraceSec > 0 && token.sessionActive) {
      const answer = await refreshGraceCache.get(tokenHash)
      // Only the token spent last is forgiven: once its successor has been used too, it is plain reuse.
      const successor = answer && await sessions.findRefreshToken(db, hashToken(answer.refreshToken))
      if (answer && successor && successor.spentAt === null) return answer
    }
    // A spent token came back: a copy of it exists somewhere, so nothing of this login can be trusted.
    metrics.refreshReused()
    await db.transaction().execute(async trx => {
      const revoked = await sessions.revokeSession(trx, token.sessionId)
      await insertAudit(trx, { ...ctx, actorId: null }, { action: 'auth.token_reused', userId: token.userId, changes: { sessionId: token.sessionId, sessionRevoked: revoked } })
    })
    throw tokenReused()
  }

  return {
    signIn,
    /** A login with no second step possible (an account just created by accepting an invitation). */
    startLogin,

    /** The account and the consents it grants (an unknown purpose is 400 before anything is done) in one transaction. */
    register (ctx: RequestContext, { consents, ...body }: Register): Promise<User> {
      consentsService.assertRegistrable(consents)
      const status = config.requireEmailVerification ? 'pending' : 'active'
      return usersService.createAccount(ctx, { ...body, roles: ['user'], status }, {
        actorIsNewUser: true,
        auditNote: { registered: true },
        ...(consents && { andThen: (trx, user) => consentsService.grantIn(trx, { ...ctx, actorId: user.id }, user.id, consents) })
      })
    },

    async login (ctx: RequestContext, email: string, password: string): Promise<LoginAnswer> {
      const normalized = email.trim().toLowerCase()
      const attempt = await loginGuard.begin(normalized, ctx).catch(err => { metrics.login('locked'); throw err })
      // Anything that ends the attempt before the password is judged (a database error) counts as nothing.
      let outcome: AttemptOutcome = 'abandoned'
      let userId: string | null = null
      try {
        const account = await users.findLoginAccount(db, compiled, normalized)
        userId = account?.id ?? null
        if (!account) {
          await hasher.verifyDummy(password)
          outcome = 'failed'
          await insertAudit(db, ctx, { action: 'auth.login_failed', userId: null, changes: { reason: 'unknown_account' } })
          throw invalidCredentials()
        }
        // An account made through a sign-in provider has no password: it fails as a wrong one does, in the same time.
        const valid = account.passwordHash === null
          ? await hasher.verifyDummy(password).then(() => false)
          : await hasher.verify(account.passwordHash, password)
        if (!valid || account.status === 'suspended') {
          outcome = 'failed'
          await insertAudit(db, ctx, { action: 'auth.login_failed', userId: account.id, changes: { reason: valid ? 'suspended' : 'wrong_password' } })
          throw invalidCredentials()
        }
        // The password was right: whatever follows, this was not a guess.
        outcome = 'passed'
        // A pending account when verification is required: signIn answers 403, as for every login.
        // A legacy or weaker hash is replaced now that the password is known (see password-hashes.ts);
        // only if it is still the one verified, so a password changed meanwhile is not undone.
        if (account.passwordHash !== null && hasher.needsRehash(account.passwordHash)) await users.replacePasswordHash(db, account.id, account.passwordHash, await hasher.hash(password))
        // A login still awaiting its second factor has not succeeded either: it neither counts nor
        // clears the failures so far, or knowing the password would wipe the count of wrong codes.
        outcome = 'abandoned'
        const answer = await signIn(ctx, account.id, { amr: ['pwd'], method: 'password' }, account)
        if (!('mfaRequired' in answer)) outcome = 'passed'
        return answer
      } finally {
        if (outcome === 'failed') metrics.login('failure')
        // The failure that locked the account (an unknown email locks as well; then userId is null).
        if (await attempt.end(outcome)) await insertAudit(db, ctx, { action: 'auth.lockout', userId, changes: { failures: config.loginMaxFailures } })
      }
    },

    /**
     * The second step of a login: the mfaToken (single use, MFA_TOKEN_TTL) with a TOTP or recovery
     * code. A wrong code is 401 INVALID_MFA_CODE and counts toward the account's lockout; the
     * token stays usable for another try until it expires or the account locks.
     */
    async verifyMfa (ctx: RequestContext, body: MfaVerify): Promise<TokenPair> {
      const factors: SecondFactor[] = [
        ...(body.code === undefined ? [] : [{ totp: body.code.trim() }]),
        ...(body.recoveryCode === undefined ? [] : [{ recoveryCode: body.recoveryCode }]),
        ...(body.passkey === undefined ? [] : [{ passkey: body.passkey }])
      ]
      if (factors.length !== 1) {
        throw validationError('Send exactly one of code, recoveryCode and passkey with the mfaToken', [{ field: 'code', message: 'exactly one of code, recoveryCode and passkey is required' }])
      }
      const tokenHash = hashToken(body.mfaToken)
      const challenge = await mfaRecords.findMfaChallenge(db, tokenHash)
      if (!challenge) throw unauthorized(MFA_TOKEN_INVALID)
      const pair = await mfaService.withSecondFactor(ctx, challenge, factors[0],
        (trx, method) => startLogin(trx, ctx, challenge.userId, { amr: [...challenge.amr, method === 'passkey' ? 'passkey' : 'otp'], method: challenge.method, audit: { secondFactor: method } }),
        // Of two verifications of one token, one spends it and the other waits for its row lock,
        // then fails here, before its code is looked at: a double submit is not a wrong code.
        async trx => { if (!await mfaRecords.spendMfaChallenge(trx, tokenHash)) throw unauthorized(MFA_TOKEN_INVALID) })
      metrics.login('success')
      return pair
    },

    /**
     * Rotates a refresh token: the presented one is spent and a new one of the same family issued,
     * atomically. A spent one presented again revokes the family, unless it is a replay of the
     * rotation that just happened within REFRESH_REUSE_GRACE seconds, which gets that same answer.
     */
    async refresh (ctx: RequestContext, refreshToken: string): Promise<TokenPair> {
      const tokenHash = hashToken(refreshToken)
      const successor = randomToken()
      const rotate = async (ex: Executor) => {
        const rotated = await sessions.rotateRefreshToken(ex, compiled, tokenHash, hashToken(successor))
        return rotated && tokenPair(rotated, rotated.sessionId, successor, rotated.amr)
      }
      const pair = config.refreshReuseGraceSec === 0
        ? await rotate(db)
        // Concurrent refreshes of this token wait on its row lock until this transaction ends, so
        // the answer is stored before any of them can look for it (on any instance sharing the store).
        : await db.transaction().execute(async trx => {
          const pair = await rotate(trx)
          // Losing this entry (a shared store being down) only turns a replay into TOKEN_REUSED.
          if (pair) await refreshGraceCache.set(tokenHash, pair, config.refreshReuseGraceSec).catch(() => {})
          return pair
        })
      if (!pair) return refusedRefresh(ctx, tokenHash)
      metrics.refreshRotated()
      return pair
    },

    /** Ends the login the refresh token belongs to; an unknown token is not an error (logging out is idempotent). */
    async logout (ctx: RequestContext, refreshToken: string) {
      const token = await sessions.findRefreshToken(db, hashToken(refreshToken))
      if (!token) return
      await db.transaction().execute(async trx => {
        if (await sessions.revokeSession(trx, token.sessionId)) {
          await insertAudit(trx, { ...ctx, actorId: token.userId }, { action: 'auth.logout', userId: token.userId, changes: { sessionId: token.sessionId } })
        }
      })
    },

    async logoutAll (ctx: RequestContext) {
      const actor = actorOf(ctx)
      await db.transaction().execute(async trx => {
        const revoked = await sessions.revokeSessions(trx, actor.id)
        await insertAudit(trx, ctx, { action: 'auth.logout', userId: actor.id, changes: { scope: 'all', sessionsRevoked: revoked } })
      })
    },

    async listSessions (ctx: RequestContext): Promise<Session[]> {
      const actor = actorOf(ctx)
      const rows = await sessions.listActiveSessions(db, actor.id)
      return rows.map(s => ({
        id: s.id,
        createdAt: s.createdAt.toISOString(),
        lastUsedAt: s.lastUsedAt.toISOString(),
        userAgent: s.userAgent,
        ip: s.ip,
        current: s.id === actor.sessionId
      }))
    },

    /** Revokes one of the caller's own sessions; anyone else's, or one already ended, is 404. */
    async revokeSession (ctx: RequestContext, sessionId: string) {
      const actor = actorOf(ctx)
      await db.transaction().execute(async trx => {
        if (!await sessions.revokeSession(trx, sessionId, actor.id)) throw notFound('Session')
        await insertAudit(trx, ctx, { action: 'auth.session_revoked', userId: actor.id, changes: { sessionId } })
      })
    },

    /** Queues a reset email when the address belongs to an account; the caller learns nothing either way. */
    async forgotPassword (email: string) {
      const account = await users.findCredentialsByEmail(db, email.trim().toLowerCase())
      // A suspended account cannot log in, so it gets no way back in by email either.
      if (!account || account.status === 'suspended') return
      const token = randomToken()
      await db.transaction().execute(async trx => {
        await tokens.insertPasswordReset(trx, { userId: account.id, tokenHash: hashToken(token), expiresAt: new Date(Date.now() + PASSWORD_RESET_TTL_MS) })
        await emails.queue(trx, account.email, 'password_reset', { token, userId: account.id })
      })
    },

    async resetPassword (ctx: RequestContext, token: string, password: string) {
      const tokenHash = hashToken(token)
      const target = await tokens.findPasswordReset(db, tokenHash)
      if (!target) throw invalidToken()
      // Checked before the token is spent, so a rejected password leaves the link usable.
      await passwordPolicy(password, target.email)
      const passwordHash = await hasher.hash(password)
      await db.transaction().execute(async trx => {
        const userId = await tokens.spendPasswordReset(trx, tokenHash)
        if (!userId) throw invalidToken()
        await users.updateUser(trx, userId, { passwordHash })
        await tokens.spendPasswordResets(trx, userId)
        const revoked = await sessions.revokeSessions(trx, userId)
        await insertAudit(trx, { ...ctx, actorId: userId }, { action: 'auth.password_reset', userId, changes: { sessionsRevoked: revoked } })
      })
    },

    async changePassword (ctx: RequestContext, currentPassword: string, newPassword: string) {
      const actor = actorOf(ctx)
      const account = await users.findPasswordHash(db, actor.id)
      if (!account) throw unauthorized()
      await passwordPolicy(newPassword, account.email)
      // Without a password (an account made through a sign-in provider) no current password is right; a reset sets one.
      if (account.passwordHash === null || !await hasher.verify(account.passwordHash, currentPassword)) throw invalidCredentials()
      const passwordHash = await hasher.hash(newPassword)
      await db.transaction().execute(async trx => {
        await users.updateUser(trx, actor.id, { passwordHash })
        await tokens.spendPasswordResets(trx, actor.id)
        const revoked = await sessions.revokeSessions(trx, actor.id, actor.sessionId ?? undefined)
        await insertAudit(trx, ctx, { action: 'auth.password_changed', userId: actor.id, changes: { sessionsRevoked: revoked } })
      })
    },

    /** Spends a verification token issued for the user's current email: the email is verified, a pending account active. */
    async verifyEmail (ctx: RequestContext, token: string) {
      await db.transaction().execute(async trx => {
        const row = await tokens.lockEmailVerification(trx, hashToken(token))
        if (!row) throw invalidToken()
        const user = await tokens.lockUserEmailState(trx, row.userId)
        // A token for an address the user no longer has proves nothing about the current one.
        if (!user || user.email !== row.email) throw invalidToken()
        await tokens.spendEmailVerification(trx, row.id)
        const changes: Record<string, { from: unknown, to: unknown }> = {}
        if (!user.emailVerified) changes.emailVerified = { from: false, to: true }
        if (user.status === 'pending') changes.status = { from: 'pending', to: 'active' }
        if (Object.keys(changes).length === 0) return
        await users.updateUser(trx, user.id, { emailVerified: true, ...(changes.status ? { status: 'active' as const } : {}) })
        await insertAudit(trx, { ...ctx, actorId: user.id }, { action: 'user.email_verified', userId: user.id, changes })
      })
    },

    /** Queues a new verification email unless the email is already verified. */
    async resendVerification (ctx: RequestContext) {
      const actor = actorOf(ctx)
      await db.transaction().execute(async trx => {
        const user = await tokens.lockUserEmailState(trx, actor.id)
        if (!user) throw unauthorized()
        if (!user.emailVerified) await queueEmailVerification(trx, emails, user.id, user.email)
      })
    },

    async me (userId: string, permissions: Iterable<string>) {
      const row = await users.findUserById(db, compiled, userId)
      // Deleted since the login was checked (by another instance, whose notification is on its
      // way): the token's user is gone, so the token is refused.
      if (!row) throw unauthorized('The access token is no longer valid')
      // Permissions come from roles.permissions, which the database keeps to the known ones.
      return { ...toUser(row), permissions: [...permissions].sort() as Permission[] }
    }
  }
}

export type AuthService = ReturnType<typeof createAuthService>

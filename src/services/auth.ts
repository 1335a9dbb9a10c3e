import type { Config } from '../config.js'
import { NO_METRICS, type AppMetrics } from '../lib/app-metrics.js'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { DB } from '../db/connect.js'
import {
  forbidden, invalidCredentials, invalidToken, notFound, tokenReused, unauthorized
} from '../errors.js'
import { assertPasswordPolicy, type PasswordHasher } from '../lib/password.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import type { AttemptOutcome } from '../lib/login-attempts.js'
import { createMemoryTtlCache, type TtlCache } from '../lib/ttl-cache.js'
import { insertAudit } from '../repositories/audit.js'
import * as sessions from '../repositories/sessions.js'
import * as tokens from '../repositories/tokens.js'
import * as users from '../repositories/users.js'
import type { Executor, UserWithRelationsRow } from '../repositories/users.js'
import type { Permission, Register, Session, TokenPair } from '../../schemas/auth.js'
import type { User } from '../../schemas/user.js'
import type { RequestContext } from './context.js'
import { toUser, type UsersService } from './users.js'
import { queueEmailVerification } from './email-verification.js'
import type { EmailOutbox } from './email.js'

export interface AccessClaims { sub: string, sid: string, typ: 'access' }

const PASSWORD_RESET_TTL_MS = 3600_000

/**
 * Login throttling. login() begins an attempt before it looks at the password (begin throws 429
 * RATE_LIMITED while the account or address is locked) and ends it with its outcome: a wrong
 * password counts as a failure, a right one never does. Unknown emails fail the same way, so a
 * lockout does not reveal which accounts exist.
 */
export interface LoginGuard {
  begin (email: string, ctx: RequestContext): Promise<LoginAttempt>
}

export interface LoginAttempt {
  end (outcome: AttemptOutcome): Promise<void>
}

const openLoginGuard: LoginGuard = {
  begin: async () => ({ end: async () => {} })
}

export interface AuthServiceDeps {
  db: DB
  compiled: CompiledQueries
  config: Config
  hasher: PasswordHasher
  usersService: UsersService
  emails: EmailOutbox
  signAccessToken: (claims: AccessClaims) => string
  loginGuard?: LoginGuard
  /**
   * Answers of recent rotations by spent-token hash, for REFRESH_REUSE_GRACE. In-process by
   * default; the app passes one shared through Redis when REDIS_URL is set.
   */
  refreshGraceCache?: TtlCache<TokenPair>
  metrics?: AppMetrics
}

export function createAuthService ({
  db, compiled, config, hasher, usersService, emails, signAccessToken, loginGuard = openLoginGuard, refreshGraceCache = createMemoryTtlCache<TokenPair>(),
  metrics = NO_METRICS
}: AuthServiceDeps) {
  /** The answer of a login or a refresh: an access token bound to the session, its refresh token and the user. */
  function tokenPair (user: UserWithRelationsRow, sessionId: string, refreshToken: string): TokenPair {
    return {
      accessToken: signAccessToken({ sub: user.id, sid: sessionId, typ: 'access' }),
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: Math.round(config.jwtExpirySec),
      user: toUser(user)
    }
  }

  /** Starts a login: a session whose absolute expiry every rotated refresh token inherits. */
  async function issueTokens (ex: Executor, ctx: RequestContext, userId: string): Promise<TokenPair> {
    const expiresAt = new Date(Date.now() + config.refreshTokenExpirySec * 1000)
    const sessionId = await sessions.createSession(ex, { userId, userAgent: ctx.userAgent, ip: ctx.ip, expiresAt })
    const refreshToken = randomToken()
    await sessions.insertRefreshToken(ex, { sessionId, userId, tokenHash: hashToken(refreshToken), expiresAt })
    const user = await users.findUserById(ex, compiled, userId)
    if (!user) throw unauthorized()
    return tokenPair(user, sessionId, refreshToken)
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
    register (ctx: RequestContext, body: Register): Promise<User> {
      const status = config.requireEmailVerification ? 'pending' : 'active'
      return usersService.createAccount(ctx, { ...body, roles: ['user'], status }, { actorIsNewUser: true, auditNote: { registered: true } })
    },

    async login (ctx: RequestContext, email: string, password: string): Promise<TokenPair> {
      const normalized = email.trim().toLowerCase()
      const attempt = await loginGuard.begin(normalized, ctx).catch(err => { metrics.login('locked'); throw err })
      // Anything that ends the attempt before the password is judged (a database error) counts as nothing.
      let outcome: AttemptOutcome = 'abandoned'
      try {
        const account = await users.findCredentialsByEmail(db, normalized)
        if (!account) {
          await hasher.verifyDummy(password)
          outcome = 'failed'
          await insertAudit(db, ctx, { action: 'auth.login_failed', userId: null, changes: { reason: 'unknown_account' } })
          throw invalidCredentials()
        }
        const valid = await hasher.verify(account.passwordHash, password)
        if (!valid || account.status === 'suspended') {
          outcome = 'failed'
          await insertAudit(db, ctx, { action: 'auth.login_failed', userId: account.id, changes: { reason: valid ? 'suspended' : 'wrong_password' } })
          throw invalidCredentials()
        }
        // The password was right: whatever follows, this was not a guess.
        outcome = 'passed'
        if (account.status === 'pending' && config.requireEmailVerification) {
          throw forbidden('Verify your email address before logging in')
        }
        const pair = await db.transaction().execute(async trx => {
          await users.recordLogin(trx, account.id)
          const pair = await issueTokens(trx, ctx, account.id)
          await insertAudit(trx, { ...ctx, actorId: account.id }, { action: 'auth.login', userId: account.id })
          return pair
        })
        metrics.login('success')
        return pair
      } finally {
        if (outcome === 'failed') metrics.login('failure')
        await attempt.end(outcome)
      }
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
        return rotated && tokenPair(rotated, rotated.sessionId, successor)
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
      assertPasswordPolicy(password, target.email)
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
      assertPasswordPolicy(newPassword, account.email)
      if (!await hasher.verify(account.passwordHash, currentPassword)) throw invalidCredentials()
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

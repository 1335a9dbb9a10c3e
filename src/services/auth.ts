import { sql } from 'kysely'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import { forbidden, invalidCredentials, notFound } from '../errors.js'
import type { PasswordHasher } from '../lib/password.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import { insertAudit } from '../repositories/audit.js'
import * as sessions from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
import type { Executor } from '../repositories/users.js'
import type { TokenPair } from '../../schemas/auth.js'
import type { RequestContext } from './context.js'
import { toUser } from './users.js'

export interface AccessClaims { sub: string, sid: string, typ: 'access' }

export interface AuthServiceDeps {
  db: DB
  config: Config
  hasher: PasswordHasher
  signAccessToken: (claims: AccessClaims) => string
}

export function createAuthService ({ db, config, hasher, signAccessToken }: AuthServiceDeps) {
  /** Starts a login: a session (the refresh-token family) and its first refresh token. */
  async function issueTokens (ex: Executor, ctx: RequestContext, userId: string): Promise<TokenPair> {
    const expiresAt = new Date(Date.now() + config.refreshTokenExpirySec * 1000)
    const sessionId = await sessions.createSession(ex, { userId, userAgent: ctx.userAgent, ip: ctx.ip, expiresAt })
    const refreshToken = randomToken()
    await sessions.insertRefreshToken(ex, { sessionId, userId, tokenHash: hashToken(refreshToken), expiresAt })
    const row = await users.findUserById(ex, userId)
    if (!row) throw notFound('User')
    return {
      accessToken: signAccessToken({ sub: userId, sid: sessionId, typ: 'access' }),
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: Math.round(config.jwtExpirySec),
      user: toUser(row)
    }
  }

  return {
    issueTokens,

    async login (ctx: RequestContext, email: string, password: string): Promise<TokenPair> {
      const account = await users.findCredentialsByEmail(db, email.trim())
      if (!account) {
        await hasher.verifyDummy(password)
        await insertAudit(db, ctx, { action: 'auth.login_failed', userId: null, changes: { reason: 'unknown_account' } })
        throw invalidCredentials()
      }
      const valid = await hasher.verify(account.passwordHash, password)
      if (!valid || account.status === 'suspended') {
        await insertAudit(db, ctx, { action: 'auth.login_failed', userId: account.id, changes: { reason: valid ? 'suspended' : 'wrong_password' } })
        throw invalidCredentials()
      }
      if (account.status === 'pending' && config.requireEmailVerification) {
        throw forbidden('Verify your email address before logging in')
      }
      return db.transaction().execute(async trx => {
        await trx.updateTable('users').set({ lastLoginAt: sql`now()` as any }).where('id', '=', account.id).execute()
        const pair = await issueTokens(trx, ctx, account.id)
        await insertAudit(trx, { ...ctx, actorId: account.id }, { action: 'auth.login', userId: account.id })
        return pair
      })
    },

    async me (userId: string, permissions: Iterable<string>) {
      const row = await users.findUserById(db, userId)
      if (!row) throw notFound('User')
      return { ...toUser(row), permissions: [...permissions].sort() }
    }
  }
}

export type AuthService = ReturnType<typeof createAuthService>

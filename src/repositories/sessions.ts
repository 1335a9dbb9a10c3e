import { sql } from 'kysely'
import type { Executor } from './users.js'

export async function createSession (db: Executor, session: { userId: string, userAgent: string | null, ip: string | null, expiresAt: Date }) {
  const row = await db.insertInto('userSessions')
    .values({ ...session, userAgent: session.userAgent?.slice(0, 512) ?? null })
    .returning('id').executeTakeFirstOrThrow()
  return row.id
}

export async function insertRefreshToken (db: Executor, token: { sessionId: string, userId: string, tokenHash: string, expiresAt: Date }) {
  await db.insertInto('refreshTokens').values(token).execute()
}

/**
 * Marks a refresh token spent if, and only if, it is still usable: unspent, unexpired, its session
 * live and its user active. One conditional UPDATE, so of several concurrent callers exactly one
 * gets the row back (the others wait for its row lock, then see spent_at set).
 */
export function spendRefreshToken (db: Executor, tokenHash: string) {
  return db.updateTable('refreshTokens as rt')
    .from(['userSessions as s', 'users as u'])
    .set({ spentAt: sql`now()` as any })
    .whereRef('s.id', '=', 'rt.sessionId')
    .whereRef('u.id', '=', 'rt.userId')
    .where('rt.tokenHash', '=', tokenHash)
    .where('rt.spentAt', 'is', null)
    .where('rt.expiresAt', '>', sql<Date>`now()`)
    .where('s.revokedAt', 'is', null)
    .where('s.expiresAt', '>', sql<Date>`now()`)
    .where('u.deletedAt', 'is', null)
    .where('u.erasedAt', 'is', null)
    .where('u.status', '!=', 'suspended')
    .returning(['rt.sessionId', 'rt.userId', 's.expiresAt'])
    .executeTakeFirst()
}

/** A refresh token in whatever state, with whether its session still counts; for telling why a refresh failed. */
export function findRefreshToken (db: Executor, tokenHash: string) {
  return db.selectFrom('refreshTokens as rt')
    .innerJoin('userSessions as s', 's.id', 'rt.sessionId')
    .select([
      'rt.sessionId', 'rt.userId', 'rt.spentAt',
      sql<boolean>`s.revoked_at is null and s.expires_at > now()`.as('sessionActive')
    ])
    .where('rt.tokenHash', '=', tokenHash)
    .executeTakeFirst()
}

export async function touchSession (db: Executor, sessionId: string) {
  await db.updateTable('userSessions').set({ lastUsedAt: sql`now()` as any }).where('id', '=', sessionId).execute()
}

/** Revokes one session (of that user, when given); true when it was live until now. */
export async function revokeSession (db: Executor, sessionId: string, userId?: string) {
  let query = db.updateTable('userSessions').set({ revokedAt: sql`now()` as any })
    .where('id', '=', sessionId).where('revokedAt', 'is', null)
  if (userId) query = query.where('userId', '=', userId)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/** Revokes every live session of the user (but one, when given); returns how many. */
export async function revokeSessions (db: Executor, userId: string, exceptSessionId?: string) {
  let query = db.updateTable('userSessions').set({ revokedAt: sql`now()` as any })
    .where('userId', '=', userId).where('revokedAt', 'is', null)
  if (exceptSessionId) query = query.where('id', '!=', exceptSessionId)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows)
}

export function listActiveSessions (db: Executor, userId: string) {
  return db.selectFrom('userSessions')
    .select(['id', 'createdAt', 'lastUsedAt', 'userAgent', 'ip'])
    .where('userId', '=', userId)
    .where('revokedAt', 'is', null)
    .where('expiresAt', '>', sql<Date>`now()`)
    .orderBy('lastUsedAt', 'desc').orderBy('id', 'desc')
    .limit(1000)
    .execute()
}

/** What an access token's validity depends on besides its signature: one indexed lookup. */
export function findAuthState (db: Executor, userId: string, sessionId: string) {
  return db.selectFrom('users as u')
    .select([
      'u.status', 'u.deletedAt',
      sql<string[]>`array(select distinct p from user_roles ur join roles r on r.id = ur.role_id, unnest(r.permissions) p where ur.user_id = u.id)`.as('permissions'),
      sql<boolean>`exists(select 1 from user_sessions s where s.id = ${sessionId} and s.user_id = u.id and s.revoked_at is null and s.expires_at > now())`.as('sessionActive')
    ])
    .where('u.id', '=', userId)
    .where('u.erasedAt', 'is', null)
    .executeTakeFirst()
}

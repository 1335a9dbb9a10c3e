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

export async function revokeSessions (db: Executor, userId: string, exceptSessionId?: string) {
  let query = db.updateTable('userSessions').set({ revokedAt: sql`now()` as any })
    .where('userId', '=', userId).where('revokedAt', 'is', null)
  if (exceptSessionId) query = query.where('id', '!=', exceptSessionId)
  await query.execute()
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

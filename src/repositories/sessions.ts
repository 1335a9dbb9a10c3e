import { sql } from 'kysely'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { Executor } from '../db/types.js'
import { sealAuditRow, type AuditRow } from './audit.js'
import { piiSealer } from './pii.js'
import { recordLoginReturning, selectUsers, type UserWithRelationsRow } from './users.js'

/**
 * A password login's writes in one statement, so in one round trip instead of a transaction of
 * seven: the user's last login, the session, its first refresh token and the audit row. Nothing
 * is written for a user who may not log in (deleted, erased or suspended since its credential was
 * checked; pending unless allowPending).
 */
export async function startLogin (db: Executor, compiled: CompiledQueries,
  login: { userId: string, allowPending: boolean, amr: string[], userAgent: string | null, ip: string | null, expiresAt: Date, tokenHash: string },
  unsealedAudit: AuditRow): Promise<(UserWithRelationsRow & { sessionId: string }) | undefined> {
  const sealer = piiSealer(db)
  const userAgent = login.userAgent?.slice(0, 512) ?? null
  const session = { userAgent: sealer ? sealer.text('user_agent', userAgent) : userAgent, ip: sealer ? sealer.text('ip', login.ip) : login.ip }
  const sealed = sealAuditRow(db, unsealedAudit)
  const audit = { ...sealed, changes: sealed.changes && JSON.stringify(sealed.changes) }
  const parameters = [login.userId, login.allowPending, session.userAgent, session.ip, login.expiresAt, login.amr, login.tokenHash,
    audit.action, audit.userId, audit.actorId, audit.changes, audit.ip, audit.userAgent, audit.requestId]
  const result = await compiled.run(db, 'startLogin', parameters, () => {
    const query = sql<UserWithRelationsRow & { sessionId: string }>`
      with u as (${recordLoginReturning(db, login.userId, login.allowPending)}),
      s as (
        insert into user_sessions (user_id, user_agent, ip, expires_at, amr)
        select u.id, ${session.userAgent}, ${session.ip}, ${login.expiresAt}, ${login.amr}::text[] from u returning id, user_id, expires_at
      ), rt as (
        insert into refresh_tokens (session_id, user_id, token_hash, expires_at)
        select s.id, s.user_id, ${login.tokenHash}, s.expires_at from s
      ), a as (
        insert into user_audit_log (action, user_id, actor_id, changes, ip, user_agent, request_id)
        select ${audit.action}, ${audit.userId}, ${audit.actorId}, ${audit.changes}::jsonb, ${audit.ip}, ${audit.userAgent}, ${audit.requestId} from u
      )
      select s.id as session_id, u.* from u cross join s`
    return { compile: () => query.compile(db) }
  })
  return result.rows[0]
}

/**
 * Rotates a refresh token in one statement: marks it spent if, and only if, it is still usable
 * (unspent, unexpired, its session live, its user active), stores its successor with the
 * session's expiry and reads the user as returned, with the login's amr. The session is not written: its last use is
 * when its newest refresh token was made (lastUsed). Of several concurrent
 * callers exactly one gets a row back: the others wait for its row lock, then see spent_at set,
 * and nothing is written for them.
 */
export async function rotateRefreshToken (db: Executor, compiled: CompiledQueries, tokenHash: string, successorHash: string) {
  const result = await compiled.run(db, 'rotateRefreshToken', [tokenHash, successorHash], () => {
    const user = selectUsers(db).where('u.id', '=', sql<string>`spent.user_id`)
    const query = sql<UserWithRelationsRow & { sessionId: string, amr: string[] }>`
      with spent as (
        update refresh_tokens rt set spent_at = now()
        from user_sessions s, users u
        where rt.token_hash = ${tokenHash} and rt.spent_at is null and rt.expires_at > now()
          and s.id = rt.session_id and s.revoked_at is null and s.expires_at > now()
          and u.id = rt.user_id and u.deleted_at is null and u.erased_at is null and u.status <> 'suspended'
        returning rt.session_id, rt.user_id, s.expires_at, s.amr
      ), successor as (
        insert into refresh_tokens (session_id, user_id, token_hash, expires_at)
        select session_id, user_id, ${successorHash}, expires_at from spent
      )
      select spent.session_id, spent.amr, the_user.* from spent cross join lateral (${user}) the_user`
    return { compile: () => query.compile(db) }
  })
  return result.rows[0]
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

/**
 * When a login was last used: its newest refresh token was made then (the session row itself is
 * not rewritten on every refresh, which would cost an UPDATE and a dead row per refresh).
 */
const lastUsed = sql<Date>`greatest(last_used_at, (select max(rt.created_at) from refresh_tokens rt where rt.session_id = user_sessions.id))`

export function listActiveSessions (db: Executor, userId: string) {
  return db.selectFrom('userSessions')
    .select(['id', 'createdAt', lastUsed.as('lastUsedAt'), 'userAgent', 'ip'])
    .where('userId', '=', userId)
    .where('revokedAt', 'is', null)
    .where('expiresAt', '>', sql<Date>`now()`)
    .orderBy(lastUsed, 'desc').orderBy('id', 'desc')
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

/** Every login of the user, live or not, newest first (for a GDPR export). */
export function listSessionsOfUser (db: Executor, userId: string) {
  return db.selectFrom('userSessions')
    .select(['id', 'createdAt', lastUsed.as('lastUsedAt'), 'expiresAt', 'revokedAt', 'userAgent', 'ip'])
    .where('userId', '=', userId).orderBy('createdAt', 'desc').execute()
}

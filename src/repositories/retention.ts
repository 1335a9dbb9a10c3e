import { sql, type RawBuilder } from 'kysely'
import type { DB } from '../db/connect.js'
import type { Executor } from '../db/types.js'

/**
 * The retention rules (services/retention.ts runs them): what each kind of row is, when it has
 * ended, and so from when it may go. Each rule is here and nowhere else.
 */
interface Rule {
  table: string
  /** The row's key: one or more columns. */
  key: string
  /** How long after it ended a row is kept: RETENTION_ENDED, not at all, or as long as events are. */
  kept: 'ended' | 'none' | 'events'
  /** The rows that may go, given the cutoff (rows that ended before it). */
  due (cutoff: Date): RawBuilder<boolean>
}

export const PURGE_RULES = {
  // A spent refresh token of a live login is kept until it expires: presenting it again is a
  // reuse that revokes the login (services/auth.ts), which needs the row.
  refresh_tokens: { table: 'refresh_tokens', key: 'id', kept: 'ended', due: c => sql`expires_at < ${c}` },
  // A login ended when it was revoked or expired; its refresh tokens go with it (on delete cascade).
  sessions: { table: 'user_sessions', key: 'id', kept: 'ended', due: c => sql`(revoked_at < ${c} or expires_at < ${c})` },
  password_reset_tokens: { table: 'password_reset_tokens', key: 'id', kept: 'ended', due: c => sql`(used_at < ${c} or expires_at < ${c})` },
  email_verification_tokens: { table: 'email_verification_tokens', key: 'id', kept: 'ended', due: c => sql`(used_at < ${c} or expires_at < ${c})` },
  mfa_challenges: { table: 'mfa_challenges', key: 'id', kept: 'ended', due: c => sql`(spent_at < ${c} or expires_at < ${c})` },
  // An accepted invitation stays (it is part of its user's record, erased with it).
  invitations: { table: 'invitations', key: 'id', kept: 'ended', due: c => sql`accepted_at is null and (revoked_at < ${c} or expires_at < ${c})` },
  // Protocol state of a sign-in in flight: useless once expired (spending one deletes it).
  oidc_auth_requests: { table: 'oidc_auth_requests', key: 'state_hash', kept: 'none', due: c => sql`expires_at <= ${c}` },
  oidc_login_codes: { table: 'oidc_login_codes', key: 'code_hash', kept: 'none', due: c => sql`expires_at <= ${c}` },
  webauthn_challenges: { table: 'webauthn_challenges', key: 'id', kept: 'none', due: c => sql`expires_at < ${c}` },
  // Sent, or given up on: an unsent email's last retry is hours after it was written (services/email.ts).
  emails: { table: 'email_outbox', key: 'id', kept: 'ended', due: c => sql`coalesce(sent_at, created_at) < ${c}` },
  webhook_deliveries: { table: 'webhook_deliveries', key: 'id', kept: 'ended', due: c => sql`status <> 'pending' and created_at < ${c}` },
  idempotency_keys: { table: 'idempotency_keys', key: 'scope, key', kept: 'none', due: c => sql`expires_at <= ${c}` },
  events: { table: 'events', key: 'seq', kept: 'events', due: c => sql`created_at < ${c}` }
} satisfies Record<string, Rule>

export type PurgeKind = keyof typeof PURGE_RULES

/**
 * Deletes up to `limit` rows of a kind that ended before the cutoff, in one short statement;
 * resolves to how many. Rows another purge has locked are skipped, not waited for, so two runs
 * at once never delete a row twice nor block each other.
 */
export async function purgeBatch (db: Executor, kind: PurgeKind, cutoff: Date, limit: number): Promise<number> {
  const { table, key, due }: Rule = PURGE_RULES[kind]
  const result = await sql`delete from ${sql.table(table)} where (${sql.raw(key)}) in (
    select ${sql.raw(key)} from ${sql.table(table)} where ${due(cutoff)} limit ${limit} for update skip locked)`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}

/** Up to `limit` users soft-deleted before the cutoff and not erased, oldest deletion first, after a keyset position. */
export async function listUsersDeletedBefore (db: Executor, cutoff: Date, after: { deletedAt: Date, id: string } | undefined, limit: number) {
  let query = db.selectFrom('users').select(['id', 'deletedAt'])
    .where('deletedAt', '<', cutoff).where('erasedAt', 'is', null)
  if (after) query = query.where(sql<boolean>`(deleted_at, id) > (${after.deletedAt}, ${after.id})`)
  const rows = await query.orderBy('deletedAt').orderBy('id').limit(limit).execute()
  return rows as Array<{ id: string, deletedAt: Date }>
}

/**
 * Deletes up to `limit` audit rows older than the cutoff. The trail refuses deletes (migration
 * 001) except of rows older than the cutoff a purge declares in its transaction (migration 020).
 */
export function purgeAuditBatch (db: DB, cutoff: Date, limit: number): Promise<number> {
  return db.transaction().execute(async trx => {
    await sql`select set_config('app.audit_purge_before', ${cutoff.toISOString()}, true)`.execute(trx)
    const result = await sql`delete from user_audit_log where id in (
      select id from user_audit_log where created_at < ${cutoff} order by created_at limit ${limit} for update skip locked)`.execute(trx)
    return Number(result.numAffectedRows ?? 0)
  })
}

/**
 * Runs `work` only while this instance holds the named lock, across every instance on the
 * database (a session advisory lock, on a connection kept for the while); resolves to undefined,
 * without running it, when another instance holds it. The embedded database has one process by
 * construction, so there it just runs (the caller serializes its own runs).
 */
export async function whileHoldingLock<T> (db: DB, kind: 'postgres' | 'embedded', name: string, work: () => Promise<T>): Promise<T | undefined> {
  if (kind === 'embedded') return work()
  return db.connection().execute(async conn => {
    const { rows: [row] } = await sql<{ held: boolean }>`select pg_try_advisory_lock(hashtext(${name})) as held`.execute(conn)
    if (!row?.held) return undefined
    try {
      return await work()
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${name}))`.execute(conn)
    }
  })
}

import { sql } from 'kysely'
import type { Executor } from '../db/types.js'
import { dateOf } from '../lib/timestamp.js'
import { piiSealer } from './pii.js'

export interface AuditContext { actorId: string | null, ip: string | null, userAgent: string | null, requestId: string | null }

export interface AuditEntry {
  action: string
  userId: string | null
  changes?: Record<string, unknown> | null
}

/** An entry's row as stored: the one place that shapes it (a bounded user agent; see sealAuditRow). */
export function auditRow (context: AuditContext, entry: AuditEntry) {
  return {
    action: entry.action,
    userId: entry.userId,
    actorId: context.actorId,
    changes: entry.changes ?? null,
    ip: context.ip,
    userAgent: context.userAgent?.slice(0, 512) ?? null,
    requestId: context.requestId
  }
}

export type AuditRow = ReturnType<typeof auditRow>

/** The row as written to this database: with PII_ENCRYPTION_KEYS, its ip, user agent and profile changes sealed. */
export function sealAuditRow (db: Executor, row: AuditRow): AuditRow {
  const sealer = piiSealer(db)
  if (!sealer) return row
  return { ...row, ip: sealer.text('ip', row.ip), userAgent: sealer.text('user_agent', row.userAgent), changes: sealer.json('changes', row.changes) }
}

export async function insertAudit (db: Executor, context: AuditContext, entry: AuditEntry) {
  const row = sealAuditRow(db, auditRow(context, entry))
  await db.insertInto('userAuditLog').values({ ...row, changes: row.changes && JSON.stringify(row.changes) }).execute()
}

export interface AuditFilter {
  userId?: string
  actorId?: string
  action?: string
  from?: string
  to?: string
}

/** Newest first (insertion order), keyset paged on seq: a page starts strictly after `after`. */
export function listAudit (db: Executor, filter: AuditFilter, afterSeq: string | undefined, limit: number) {
  let query = db.selectFrom('userAuditLog')
    .select(['id', 'seq', 'action', 'actorId', 'userId', 'changes', 'ip', 'userAgent', 'requestId', 'createdAt'])
  if (filter.userId) query = query.where('userId', '=', filter.userId)
  if (filter.actorId) query = query.where('actorId', '=', filter.actorId)
  if (filter.action) query = query.where('action', '=', filter.action)
  if (filter.from) query = query.where('createdAt', '>=', dateOf(filter.from))
  if (filter.to) query = query.where('createdAt', '<', dateOf(filter.to))
  if (afterSeq !== undefined) query = query.where(sql<boolean>`seq < ${afterSeq}::bigint`)
  return query.orderBy('seq', 'desc').limit(limit).execute()
}

/** Everything the trail holds about or by a user, newest first (for a GDPR export). */
export function auditTrailOf (db: Executor, userId: string, limit: number) {
  return db.selectFrom('userAuditLog')
    .select(['id', 'action', 'actorId', 'userId', 'changes', 'ip', 'userAgent', 'requestId', 'createdAt'])
    .where(eb => eb.or([eb('userId', '=', userId), eb('actorId', '=', userId)]))
    .orderBy('seq', 'desc').limit(limit).execute()
}

/**
 * Erasure keeps the trail's shape without the user's PII: the changes about it, and the ip and
 * user agent of rows about or by it. The table refuses updates except in a transaction that
 * declares an erasure (its trigger reads app.audit_erase), so call this inside one.
 */
export async function scrubAuditTrail (trx: Executor, userId: string) {
  await sql`select set_config('app.audit_erase', 'on', true)`.execute(trx)
  await sql`update user_audit_log
    set changes = case when user_id = ${userId} then null else changes end, ip = null, user_agent = null
    where user_id = ${userId} or actor_id = ${userId}`.execute(trx)
  await sql`select set_config('app.audit_erase', 'off', true)`.execute(trx)
}

/**
 * Many entries of one context in one statement (a bulk import), as one JSON parameter: about half
 * the time of a multi-row VALUES with seven parameters a row (bench/import.ts).
 */
export async function insertAudits (db: Executor, context: AuditContext, entries: AuditEntry[]) {
  await insertAuditRows(db, entries.map(entry => ({ context, entry })))
}

/**
 * Entries of different contexts in one statement: a batch of user.viewed rows written after the
 * reads, each with the time it happened (at), or else the time of the insert.
 */
export async function insertAuditRows (db: Executor, rows: Array<{ context: AuditContext, entry: AuditEntry, at?: Date }>) {
  if (rows.length === 0) return
  const json = JSON.stringify(rows.map(({ context, entry, at }) => ({ ...sealAuditRow(db, auditRow(context, entry)), at: at ?? null })))
  await sql`insert into user_audit_log (action, user_id, actor_id, changes, ip, user_agent, request_id, created_at)
    select t.action, t."userId", t."actorId", t.changes, t.ip, t."userAgent", t."requestId", coalesce(t.at, clock_timestamp())
    from jsonb_to_recordset(${json}::text::jsonb)
      as t(action text, "userId" uuid, "actorId" uuid, changes jsonb, ip text, "userAgent" text, "requestId" text, at timestamptz)`.execute(db)
}

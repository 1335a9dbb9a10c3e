import { sql } from 'kysely'
import type { Executor } from './users.js'

export interface AuditContext { actorId: string | null, ip: string | null, userAgent: string | null, requestId: string | null }

export interface AuditEntry {
  action: string
  userId: string | null
  changes?: Record<string, unknown> | null
}

export async function insertAudit (db: Executor, context: AuditContext, entry: AuditEntry) {
  await db.insertInto('userAuditLog').values({
    action: entry.action,
    userId: entry.userId,
    actorId: context.actorId,
    changes: entry.changes ? JSON.stringify(entry.changes) : null,
    ip: context.ip,
    userAgent: context.userAgent?.slice(0, 512) ?? null,
    requestId: context.requestId
  }).execute()
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
  if (filter.from) query = query.where('createdAt', '>=', new Date(filter.from))
  if (filter.to) query = query.where('createdAt', '<', new Date(filter.to))
  if (afterSeq !== undefined) query = query.where(sql<boolean>`seq < ${afterSeq}::bigint`)
  return query.orderBy('seq', 'desc').limit(limit).execute()
}

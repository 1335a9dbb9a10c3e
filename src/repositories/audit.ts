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

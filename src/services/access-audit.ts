import type { FastifyBaseLogger } from 'fastify'
import type { DB } from '../db/connect.js'
import { insertAuditRows, type AuditContext, type AuditEntry } from '../repositories/audit.js'
import type { RequestContext } from './context.js'

/** A batch is written once it holds this many rows, or after flushMs, whichever comes first. */
export const ACCESS_AUDIT_BATCH = 500
/** Rows held while the database refuses them; beyond it the oldest are dropped (and logged). */
const MAX_HELD = 50_000

export interface AccessAudit {
  /** A read of a user's record: audited as user.viewed when enabled and the caller is someone else. */
  viewed (ctx: RequestContext, userId: string): void
  /** Writes what is held (the app's onClose: a graceful shutdown loses nothing). */
  close (): Promise<void>
}

/** Audits nothing (AUDIT_DATA_ACCESS off). */
export const NO_ACCESS_AUDIT: AccessAudit = { viewed () {}, async close () {} }

type Held = { context: AuditContext, entry: AuditEntry, at: Date }

/**
 * Audits reads of other users' records (AUDIT_DATA_ACCESS) without a database write on the read
 * path: each read is held in memory and written with others in one multi-row insert, every
 * flushMs or every ACCESS_AUDIT_BATCH rows. One write at a time; a failed one keeps its rows for
 * the next. A crash loses at most what is held (about flushMs of reads); a graceful close none.
 */
export function createAccessAudit ({ db, enabled, flushMs, log }: { db: DB, enabled: boolean, flushMs: number, log: FastifyBaseLogger }): AccessAudit {
  if (!enabled) return NO_ACCESS_AUDIT
  let held: Held[] = []
  let timer: NodeJS.Timeout | undefined
  let writing: Promise<void> | undefined

  async function write () {
    while (held.length > 0) {
      const batch = held.slice(0, ACCESS_AUDIT_BATCH)
      try {
        await insertAuditRows(db, batch)
        held = held.slice(batch.length)
      } catch (err) {
        log.error({ err, held: held.length }, 'writing user.viewed audit rows failed; kept for the next attempt')
        if (held.length > MAX_HELD) {
          log.error({ dropped: held.length - MAX_HELD }, 'too many user.viewed audit rows held; the oldest are dropped')
          held = held.slice(held.length - MAX_HELD)
        }
        return
      }
    }
  }

  function flush (): Promise<void> {
    clearTimeout(timer)
    timer = undefined
    writing ??= write().finally(() => {
      writing = undefined
      if (held.length > 0) schedule()
    })
    return writing
  }

  function schedule () {
    timer ??= setTimeout(() => { flush().catch(() => {}) }, flushMs).unref()
  }

  return {
    viewed (ctx, userId) {
      if (ctx.actorId === null || ctx.actorId === userId) return
      held.push({ context: { actorId: ctx.actorId, ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId }, entry: { action: 'user.viewed', userId }, at: new Date() })
      if (held.length >= ACCESS_AUDIT_BATCH && !writing) flush().catch(() => {})
      else schedule()
    },
    async close () {
      clearTimeout(timer)
      timer = undefined
      // The write in flight, then whatever came meanwhile.
      await writing
      await flush()
      clearTimeout(timer)
      timer = undefined
    }
  }
}

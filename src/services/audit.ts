import type { LagTolerantReads } from '../db/read-routing.js'
import { validationError } from '../errors.js'
import { decodeCursor, encodeCursor, listFingerprint } from '../lib/cursor.js'
import { dateOf } from '../lib/timestamp.js'
import { listAudit, type AuditFilter } from '../repositories/audit.js'
import type { AuditListQuery, AuditLogEntry, AuditPagination } from '../../schemas/audit.js'

/** Reads the audit trail; it is written by the services that change things, in their own transactions. */
export function createAuditService ({ reads }: { reads: LagTolerantReads }) {
  return {
    /** On the replica when there is one (callerId: whose own writes it must show). */
    async list (query: AuditListQuery, callerId: string | null = null): Promise<{ data: AuditLogEntry[], pagination: AuditPagination, cursorAt: (index: number) => string }> {
      const filter: AuditFilter = { userId: query.userId, actorId: query.actorId, action: query.action, from: query.from, to: query.to }
      if (filter.from && filter.to && dateOf(filter.from) >= dateOf(filter.to)) {
        throw validationError('from must be before to', [{ field: 'from', message: 'must be before to' }])
      }
      const fingerprint = listFingerprint(['audit', filter])
      let afterSeq: string | undefined
      if (query.cursor) {
        const position = decodeCursor(query.cursor, fingerprint)
        if (!/^\d{1,18}$/.test(position.value)) throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
        afterSeq = position.value
      }
      const rows = await reads.run(callerId, db => listAudit(db, filter, afterSeq, query.limit + 1))
      const hasNext = rows.length > query.limit
      const page = rows.slice(0, query.limit)
      // Any entry's position in this list (GraphQL gives one per edge); REST only needs the last one's.
      const cursorAt = (index: number) => encodeCursor(fingerprint, { value: String(page[index].seq), id: page[index].id })
      return {
        data: page.map(row => ({
          id: row.id,
          action: row.action,
          actorId: row.actorId,
          userId: row.userId,
          changes: row.changes ?? null,
          ip: row.ip,
          userAgent: row.userAgent,
          requestId: row.requestId,
          createdAt: row.createdAt.toISOString()
        })),
        pagination: {
          limit: query.limit,
          hasNext,
          nextCursor: hasNext && page.length > 0 ? cursorAt(page.length - 1) : null
        },
        cursorAt
      }
    }
  }
}

export type AuditService = ReturnType<typeof createAuditService>

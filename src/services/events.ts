import type { Executor } from '../db/types.js'
import { findEvent, listEventsAfter, type EventFilter, type EventRow } from '../repositories/events.js'
import type { Event } from '../../schemas/event.js'

/** How long events are kept (retention purges older ones): a stream resumes within 24 h (CONTRACT.md); a day more for slack. */
export const EVENT_RETENTION_MS = 48 * 3600_000

export function toEvent (row: EventRow): Event {
  return { id: row.id, type: row.type, createdAt: row.createdAt.toISOString(), data: row.data as Event['data'] }
}

/**
 * Reads the events that the audit trail's trigger writes (db/migrations/013_events_webhooks.up.sql);
 * nothing here writes one. Positions are the events' seq, as strings.
 */
export function createEventsService ({ db }: { db: Executor }) {
  return {
    /** The event with that id and its position, or undefined when it is unknown or no longer kept. */
    async find (id: string): Promise<{ seq: string, event: Event } | undefined> {
      const row = await findEvent(db, id)
      return row && { seq: String(row.seq), event: toEvent(row) }
    },

    /** Up to `limit` events after a position (null: from the oldest kept), oldest first. */
    async after (afterSeq: string | null, limit: number, filter: EventFilter = {}): Promise<Array<{ seq: string, event: Event }>> {
      const rows = await listEventsAfter(db, afterSeq, limit, filter)
      return rows.map(row => ({ seq: String(row.seq), event: toEvent(row) }))
    }
  }
}

export type EventsService = ReturnType<typeof createEventsService>

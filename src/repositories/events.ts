import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

const EVENT_COLUMNS = ['seq', 'id', 'type', 'userId', 'actorId', 'data', 'createdAt'] as const

export interface EventFilter {
  /** Only events of these types. */
  types?: string[]
  /** Only events about this user (its userId). */
  userId?: string
}

/**
 * Events after a position (seq), oldest first: a resume reads on from the last event it saw
 * (after = null: from the oldest kept). seq orders events by insertion; see the migration for
 * what that means for transactions committing out of order.
 */
export function listEventsAfter (db: Executor, afterSeq: string | number | null, limit: number, filter: EventFilter = {}) {
  let query = db.selectFrom('events').select(EVENT_COLUMNS)
  if (afterSeq !== null) query = query.where(sql<boolean>`seq > ${String(afterSeq)}::bigint`)
  if (filter.types?.length) query = query.where('type', 'in', filter.types)
  if (filter.userId) query = query.where('userId', '=', filter.userId)
  return query.orderBy('seq', 'asc').limit(limit).execute()
}

/** The event with that id, if it is still kept. */
export function findEvent (db: Executor, id: string) {
  return db.selectFrom('events').select(EVENT_COLUMNS).where('id', '=', id).executeTakeFirst()
}

export type EventRow = NonNullable<Awaited<ReturnType<typeof findEvent>>>

/** The events with these ids that are still kept, oldest first (the live streams read what a batch of notifications named). */
export function listEventsByIds (db: Executor, ids: string[]) {
  return db.selectFrom('events').select(EVENT_COLUMNS).where('id', 'in', ids).orderBy('seq', 'asc').execute()
}

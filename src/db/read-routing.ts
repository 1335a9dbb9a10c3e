import { sql } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { CompiledQueries } from './compiled-queries.js'
import type { DB, ReplicaHandle } from './connect.js'

/** Where a read ran: the replica, or the primary (no replica, the caller's write not replayed yet, or the replica down). */
export type ReadTarget = 'replica' | 'primary'

/** The caller's last write position (a pg_lsn), shared by every instance when Redis is configured. */
export interface WriteMarks {
  get (callerId: string): Promise<string | undefined>
  set (callerId: string, lsn: string, ttlSec: number): Promise<void>
}

export interface LagTolerantReads {
  /**
   * Runs a read that may see the database a little behind (lists, the audit trail, exports) on the
   * replica, unless the caller's own last write is not replayed there yet, or the replica is
   * unreachable or failing: then on the primary. A read that fails on the replica runs again on the primary.
   */
  run<R> (callerId: string | null, read: (db: DB, compiled: CompiledQueries) => Promise<R>): Promise<R>
  /** Notes where the primary's WAL stands after a write by the caller, before its answer leaves. */
  wrote (callerId: string): Promise<void>
  /** The replica's replay lag behind the primary in WAL bytes; undefined without a replica or when it is unreachable. */
  lagBytes (): Promise<number | undefined>
}

/**
 * How long a caller's write keeps its reads off a replica that has not replayed it. Past it a read
 * goes to the replica again whatever its lag: the replica would have to be this far behind.
 */
const WRITE_MARK_TTL_SEC = 60
/** After a replica failure, how long its reads go to the primary before the replica is tried again. */
const BREAKER_MS = 5000
/** A write whose position could not be read: the caller's reads go to the primary for the whole TTL. */
const UNKNOWN_LSN = 'FFFFFFFF/FFFFFFFF'

/** A pg_lsn ('16/B374D848') as a number that orders like it. */
export function lsnValue (lsn: string): bigint {
  const [high, low] = lsn.split('/')
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`)
}

/** Every read on the one database there is. */
export function primaryOnly (db: DB, compiled: CompiledQueries): LagTolerantReads {
  return {
    run: (_callerId, read) => read(db, compiled),
    wrote: async () => {},
    lagBytes: async () => undefined
  }
}

/**
 * Read-your-writes by replay position: after a write request of a caller (any instance), the
 * primary's current WAL position is kept for that caller (Redis when configured, else in process,
 * for WRITE_MARK_TTL_SEC). A lag-tolerant read of a caller with such a mark goes to the replica
 * only once the replica's replay position has reached it, so the caller always sees its own
 * writes, while every other read (and that caller's, a few milliseconds later) stays on the
 * replica. Cost: one `pg_current_wal_lsn()` per write request and one mark lookup per routed read;
 * the replica's position is asked only for callers with a mark that the last known position does
 * not already cover.
 */
export function replicaReads (primary: { db: DB, compiled: CompiledQueries }, replica: ReplicaHandle, marks: WriteMarks,
  log: FastifyBaseLogger, observe: (target: ReadTarget) => void = () => {}): LagTolerantReads {
  let replayed = 0n
  let skipReplicaUntil = 0

  const usable = () => Date.now() >= skipReplicaUntil
  const trip = (err: unknown) => {
    if (usable()) log.warn({ err }, 'the database replica failed; reading from the primary for now')
    skipReplicaUntil = Date.now() + BREAKER_MS
  }

  // On a server that is not in recovery (a replica promoted, or a URL naming a primary) it is up to date.
  async function replayPosition () {
    const { rows } = await sql<{ lsn: string }>`select coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text as lsn`.execute(replica.db)
    replayed = lsnValue(rows[0].lsn)
    return replayed
  }

  async function caughtUpWith (callerId: string) {
    const mark = await marks.get(callerId)
    if (mark === undefined) return true
    const wanted = lsnValue(mark)
    return replayed >= wanted || await replayPosition() >= wanted
  }

  async function onPrimary<R> (read: (db: DB, compiled: CompiledQueries) => Promise<R>) {
    observe('primary')
    return read(primary.db, primary.compiled)
  }

  return {
    async run (callerId, read) {
      if (!usable()) return onPrimary(read)
      try {
        if (callerId !== null && !await caughtUpWith(callerId)) return onPrimary(read)
        const result = await read(replica.db, replica.compiled)
        observe('replica')
        return result
      } catch (err) {
        trip(err)
        return onPrimary(read)
      }
    },

    async wrote (callerId) {
      let lsn = UNKNOWN_LSN
      try {
        const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(primary.db)
        lsn = rows[0].lsn
      } catch (err) {
        log.warn({ err }, 'reading the primary\'s WAL position failed; the caller reads from the primary for a while')
      }
      await marks.set(callerId, lsn, WRITE_MARK_TTL_SEC)
    },

    async lagBytes () {
      if (!usable()) return undefined
      try {
        const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(primary.db)
        const behind = lsnValue(rows[0].lsn) - await replayPosition()
        return Number(behind > 0n ? behind : 0n)
      } catch {
        return undefined
      }
    }
  }
}

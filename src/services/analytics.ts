import type { DB } from '../db/connect.js'
import { validationError } from '../errors.js'
import { dateOf } from '../lib/timestamp.js'
import { auditCountsByBucket, findStoredBuckets, storeBuckets, userTotals, type StoredBucket } from '../repositories/analytics.js'
import { MAX_ANALYTICS_RANGE_DAYS, type AnalyticsBucket, type AnalyticsInterval, type AnalyticsSummary, type AnalyticsSummaryQuery } from '../../schemas/analytics.js'

const DAY_MS = 86_400_000

/** Which audit actions each figure of a bucket counts (activeUsers: the distinct users of LOGIN). */
const LOGIN = 'auth.login'
const COUNTED: Record<Exclude<keyof AnalyticsBucket, 'start' | 'activeUsers'>, string[]> = {
  signups: ['user.created'],
  logins: [LOGIN],
  failedLogins: ['auth.login_failed', 'auth.mfa_failed'],
  lockouts: ['auth.lockout']
}

/** The range a summary covers when from is not given: a month of days, a quarter of weeks, a year of months. */
const DEFAULT_SPAN_DAYS: Record<AnalyticsInterval, number> = { day: 30, week: 84, month: 365 }

/** The UTC start of the bucket holding `at` (weeks start on Monday, as PostgreSQL's date_trunc). */
function bucketStart (at: Date, interval: AnalyticsInterval): Date {
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate())
  if (interval === 'day') return new Date(day)
  if (interval === 'week') return new Date(day - ((at.getUTCDay() + 6) % 7) * DAY_MS)
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1))
}

function nextBucket (start: Date, interval: AnalyticsInterval): Date {
  if (interval === 'month') return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1))
  return new Date(start.getTime() + (interval === 'week' ? 7 : 1) * DAY_MS)
}

/**
 * How long after a bucket ends its figures are taken as final and stored: an audit row carries the
 * time it was written, and the transaction writing it may commit a little later.
 */
const CLOSED_AFTER_MS = 10 * 60_000

interface Span { start: Date, end: Date }

/** Buckets as runs of neighbours, so that each run is computed by one statement. */
function runsOf (spans: Span[]): Span[][] {
  const runs: Span[][] = []
  for (const span of spans) {
    const last = runs.at(-1)
    if (last && last.at(-1)!.end.getTime() === span.start.getTime()) last.push(span)
    else runs.push([span])
  }
  return runs
}

/**
 * Sign-up and login figures per day, week or month, from the audit trail, and the users table's
 * totals. A bucket that lies wholly in the range and has closed is computed once and stored
 * (analytics_buckets, migration 012); the others (the first and last when partial, the current
 * one) are counted from the audit trail's index each time.
 */
export function createAnalyticsService ({ db }: { db: DB }) {
  /** Each bucket's figures, from the audit rows in [from, to) of each run of buckets. */
  async function count (runs: Span[][], interval: AnalyticsInterval, from: Date, to: Date): Promise<StoredBucket[]> {
    const actions = [...new Set(Object.values(COUNTED).flat())]
    const counted: StoredBucket[] = []
    for (const run of runs) {
      const range = { from: new Date(Math.max(run[0].start.getTime(), from.getTime())), to: new Date(Math.min(run.at(-1)!.end.getTime(), to.getTime())) }
      const rows = await auditCountsByBucket(db, { ...range, interval, actions })
      for (const { start } of run) {
        const found = new Map(rows.filter(row => row.start.getTime() === start.getTime()).map(row => [row.action, row]))
        const sum = (names: string[]) => names.reduce((n, name) => n + (found.get(name)?.events ?? 0), 0)
        counted.push({
          start,
          signups: sum(COUNTED.signups),
          logins: sum(COUNTED.logins),
          activeUsers: found.get(LOGIN)?.users ?? 0,
          failedLogins: sum(COUNTED.failedLogins),
          lockouts: sum(COUNTED.lockouts)
        })
      }
    }
    return counted
  }

  return {
    async summary (query: AnalyticsSummaryQuery): Promise<AnalyticsSummary> {
      const { interval } = query
      const now = new Date()
      const to = query.to === undefined ? now : dateOf(query.to)
      const from = query.from === undefined ? new Date(to.getTime() - DEFAULT_SPAN_DAYS[interval] * DAY_MS) : dateOf(query.from)
      if (from > to) throw validationError('from must not be after to', [{ field: 'from', message: 'must not be after to' }])
      if (to.getTime() - from.getTime() > MAX_ANALYTICS_RANGE_DAYS * DAY_MS) {
        throw validationError(`The range is longer than ${MAX_ANALYTICS_RANGE_DAYS} days`, [{ field: 'from', message: `must be at most ${MAX_ANALYTICS_RANGE_DAYS} days before to` }])
      }
      // Every bucket that overlaps [from, to).
      const spans: Span[] = []
      for (let start = bucketStart(from, interval); start < to; start = nextBucket(start, interval)) spans.push({ start, end: nextBucket(start, interval) })
      const storable = (span: Span) => span.start >= from && span.end <= to && span.end.getTime() <= now.getTime() - CLOSED_AFTER_MS
      const [totals, stored] = await Promise.all([
        userTotals(db),
        findStoredBuckets(db, interval, spans.filter(storable).map(span => span.start))
      ])
      const known = new Map(stored.map(bucket => [bucket.start.getTime(), bucket]))
      const counted = await count(runsOf(spans.filter(span => !known.has(span.start.getTime()))), interval, from, to)
      await storeBuckets(db, interval, counted.filter(bucket => storable({ start: bucket.start, end: nextBucket(bucket.start, interval) })))
      for (const bucket of counted) known.set(bucket.start.getTime(), bucket)
      const series = spans.map(({ start }) => ({ ...known.get(start.getTime())!, start: start.toISOString() }))
      return { totals, series }
    }
  }
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>

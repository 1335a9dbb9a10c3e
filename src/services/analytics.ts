import type { LagTolerantReads } from '../db/read-routing.js'
import { validationError } from '../errors.js'
import { dateOf } from '../lib/timestamp.js'
import { auditCountsByBucket, userTotals } from '../repositories/analytics.js'
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

/** Sign-up and login figures per day, week or month, from the audit trail, and the users table's totals. */
export function createAnalyticsService ({ reads }: { reads: LagTolerantReads }) {
  return {
    /** On the replica when there is one: a summary may lag a little behind. */
    async summary (query: AnalyticsSummaryQuery, callerId: string | null = null): Promise<AnalyticsSummary> {
      const { interval } = query
      const to = query.to === undefined ? new Date() : dateOf(query.to)
      const from = query.from === undefined ? new Date(to.getTime() - DEFAULT_SPAN_DAYS[interval] * DAY_MS) : dateOf(query.from)
      if (from > to) throw validationError('from must not be after to', [{ field: 'from', message: 'must not be after to' }])
      if (to.getTime() - from.getTime() > MAX_ANALYTICS_RANGE_DAYS * DAY_MS) {
        throw validationError(`The range is longer than ${MAX_ANALYTICS_RANGE_DAYS} days`, [{ field: 'from', message: `must be at most ${MAX_ANALYTICS_RANGE_DAYS} days before to` }])
      }
      const actions = [...new Set(Object.values(COUNTED).flat())]
      const [totals, counts] = await reads.run(callerId, db => Promise.all([
        userTotals(db),
        auditCountsByBucket(db, { from, to, interval, actions })
      ]))
      const byBucket = new Map<number, Map<string, { events: number, users: number }>>()
      for (const row of counts) {
        const actionsOf = byBucket.get(row.start.getTime()) ?? new Map()
        actionsOf.set(row.action, { events: row.events, users: row.users })
        byBucket.set(row.start.getTime(), actionsOf)
      }
      // Every bucket that overlaps [from, to), those without a row included.
      const series: AnalyticsBucket[] = []
      for (let start = bucketStart(from, interval); start < to; start = nextBucket(start, interval)) {
        const found = byBucket.get(start.getTime())
        const sum = (names: string[]) => names.reduce((n, name) => n + (found?.get(name)?.events ?? 0), 0)
        series.push({
          start: start.toISOString(),
          signups: sum(COUNTED.signups),
          logins: sum(COUNTED.logins),
          activeUsers: found?.get(LOGIN)?.users ?? 0,
          failedLogins: sum(COUNTED.failedLogins),
          lockouts: sum(COUNTED.lockouts)
        })
      }
      return { totals, series }
    }
  }
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>

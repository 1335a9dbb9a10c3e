import { Type, type Static } from '@sinclair/typebox'
import { Success, Timestamp } from './common.js'

export const ANALYTICS_INTERVALS = ['day', 'week', 'month'] as const
export type AnalyticsInterval = typeof ANALYTICS_INTERVALS[number]

/** The longest range one summary covers (a year, a leap one included): at most 367 days, 54 weeks or 13 months. */
export const MAX_ANALYTICS_RANGE_DAYS = 366

export const AnalyticsSummaryQuerySchema = Type.Object({
  from: Type.Optional(Timestamp({ description: 'Inclusive. Default: to minus 30 days (day), 12 weeks (week) or 365 days (month)' })),
  to: Type.Optional(Timestamp({ description: 'Exclusive. Default: now' })),
  interval: Type.Union(ANALYTICS_INTERVALS.map(i => Type.Literal(i)), { default: 'day', description: 'The length of each series bucket (UTC; weeks start on Monday)' })
})
export type AnalyticsSummaryQuery = Static<typeof AnalyticsSummaryQuerySchema> & { interval: AnalyticsInterval }

const Count = (description: string) => Type.Integer({ format: 'int64', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description })

export const AnalyticsTotalsSchema = Type.Object({
  users: Count('Users now, not deleted (active + suspended + pending)'),
  active: Count('Users now with status active, not deleted'),
  suspended: Count('Users now with status suspended, not deleted'),
  pending: Count('Users now with status pending, not deleted'),
  deleted: Count('Users soft-deleted now (not erased)')
}, { $id: 'AnalyticsTotals', description: 'The users table as it is now, whatever the range' })

export const AnalyticsBucketSchema = Type.Object({
  start: Timestamp({ description: 'The bucket\'s start (UTC midnight; a Monday for weeks, the 1st for months); the first bucket may start before from, counting only from from' }),
  signups: Count('Accounts created (audit user.created: registration, by an administrator or an invitation)'),
  logins: Count('Successful logins (audit auth.login)'),
  activeUsers: Count('Distinct users with a successful login in the bucket'),
  failedLogins: Count('Failed logins: wrong credentials, unknown or suspended accounts, wrong second factors (audit auth.login_failed and auth.mfa_failed)'),
  lockouts: Count('Accounts locked by LOGIN_MAX_FAILURES failures (audit auth.lockout)')
}, { $id: 'AnalyticsBucket' })
export type AnalyticsBucket = Static<typeof AnalyticsBucketSchema>

export const AnalyticsSummarySchema = Type.Object({
  totals: Type.Ref(AnalyticsTotalsSchema),
  series: Type.Array(Type.Ref(AnalyticsBucketSchema), { maxItems: MAX_ANALYTICS_RANGE_DAYS + 1, description: 'One bucket per interval overlapping [from, to), oldest first; empty when from equals to' })
}, { $id: 'AnalyticsSummary' })
export type AnalyticsSummary = Static<typeof AnalyticsSummarySchema>

export const AnalyticsSummaryResponseSchema = Success(Type.Ref(AnalyticsSummarySchema))

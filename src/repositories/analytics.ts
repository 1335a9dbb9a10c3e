import { sql } from 'kysely'
import type { Executor } from '../db/types.js'
import type { AnalyticsInterval } from '../../schemas/analytics.js'

/** The users table now, in one scan: live users by status, and the soft-deleted (erased users are gone). */
export async function userTotals (db: Executor) {
  const { rows: [row] } = await sql<{ users: number, active: number, suspended: number, pending: number, deleted: number }>`
    select count(*) filter (where deleted_at is null)::int as users,
           count(*) filter (where deleted_at is null and status = 'active')::int as active,
           count(*) filter (where deleted_at is null and status = 'suspended')::int as suspended,
           count(*) filter (where deleted_at is null and status = 'pending')::int as pending,
           count(*) filter (where deleted_at is not null)::int as deleted
    from users where erased_at is null`.execute(db)
  return row
}

/**
 * Audit rows of the given actions in [from, to), per UTC bucket and action: how many, and of how
 * many distinct users. Reads only user_audit_log_action_created_at_idx (migration 012), an
 * index-only scan per action. Buckets are truncated in UTC as timestamps without time zone, so
 * neither the session's time zone nor its month arithmetic enters.
 */
export async function auditCountsByBucket (db: Executor, range: { from: Date, to: Date, interval: AnalyticsInterval, actions: string[] }) {
  const { rows } = await sql<{ start: Date, action: string, events: number, users: number }>`
    select date_trunc(${range.interval}, created_at at time zone 'UTC') at time zone 'UTC' as start, action,
           count(*)::int as events, count(distinct user_id)::int as users
    from user_audit_log
    where action = any(${range.actions}::text[]) and created_at >= ${range.from} and created_at < ${range.to}
    group by 1, 2`.execute(db)
  return rows
}

export interface StoredBucket { start: Date, signups: number, logins: number, activeUsers: number, failedLogins: number, lockouts: number }

/** The stored figures of these closed buckets (those computed before). */
export function findStoredBuckets (db: Executor, period: AnalyticsInterval, starts: Date[]): Promise<StoredBucket[]> {
  if (starts.length === 0) return Promise.resolve([])
  return db.selectFrom('analyticsBuckets').select(['start', 'signups', 'logins', 'activeUsers', 'failedLogins', 'lockouts'])
    .where('period', '=', period).where('start', '=', sql<Date>`any(${starts}::timestamptz[])`).execute()
}

/** Keeps closed buckets' figures; one computed meanwhile by another request stays as it is (the same figures). */
export async function storeBuckets (db: Executor, period: AnalyticsInterval, buckets: StoredBucket[]) {
  if (buckets.length === 0) return
  await db.insertInto('analyticsBuckets').values(buckets.map(bucket => ({ period, ...bucket })))
    .onConflict(oc => oc.columns(['period', 'start']).doNothing()).execute()
}

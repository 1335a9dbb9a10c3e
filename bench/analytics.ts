// npx tsx bench/analytics.ts: how long GET /api/v1/analytics/summary's work takes on a year of audit
// rows (1,000,000 by default) and the bench's seeded users, on a fresh database of the PostgreSQL
// server in DATABASE_URL (default postgres://postgres@127.0.0.1:5432; the database part is ignored),
// dropped at the end. BENCH_AUDIT_ROWS and BENCH_USERS change the sizes; BENCH_RUNS the repeats.
import { CamelCasePlugin, Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createBenchDatabase } from './lib/database.js'
import type { DB } from '../src/db/connect.js'
import { createAnalyticsService } from '../src/services/analytics.js'
import type { AnalyticsInterval } from '../schemas/analytics.js'

const env = process.env
const auditRows = Number(env.BENCH_AUDIT_ROWS ?? 1_000_000)
const users = Number(env.BENCH_USERS ?? 100_000)
const runs = Number(env.BENCH_RUNS ?? 7)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const bench = await createBenchDatabase(env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432')
const pool = new pg.Pool({ connectionString: bench.url, max: 2 })
const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }), plugins: [new CamelCasePlugin()] })
try {
  console.log(`database ${bench.name}: seeding ${users.toLocaleString('en')} users...`)
  await bench.growTo(users)
  // A year of audit rows ending now, evenly spread, in the proportions a login-heavy service
  // writes: 60 % logins, 10 % failed logins, 5 % sign-ups, 0.5 % lockouts, the rest other actions.
  console.log(`seeding ${auditRows.toLocaleString('en')} audit rows over the last 365 days...`)
  const started = performance.now()
  for (let from = 1; from <= auditRows; from += 250_000) {
    const to = Math.min(auditRows, from + 249_999)
    await sql`
      insert into user_audit_log (action, actor_id, user_id, created_at)
      select case when g % 1000 < 600 then 'auth.login' when g % 1000 < 700 then 'auth.login_failed'
                  when g % 1000 < 750 then 'user.created' when g % 1000 < 755 then 'auth.lockout'
                  when g % 1000 < 900 then 'user.updated' else 'auth.logout' end,
             u.id, u.id, now() - (${auditRows} - g) * (interval '365 days' / ${auditRows})
      from generate_series(${from}::int, ${to}::int) g
      join lateral (select id from users where email = 'bench-' || (1 + (g::bigint * 7919) % ${users}) || '@example.test') u on true`.execute(db)
  }
  await sql`vacuum (analyze) user_audit_log`.execute(db)
  console.log(`seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`)

  const analytics = createAnalyticsService({ db: db as unknown as DB })
  const to = new Date()
  const from = new Date(to.getTime() - 365 * 86_400_000)
  for (const interval of ['day', 'week', 'month'] as AnalyticsInterval[]) {
    const times: number[] = []
    let buckets = 0
    let logins = 0
    // The first summary counts every bucket from the audit trail and stores the closed ones; the
    // later ones read those and count only the partial first and the current bucket.
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now()
      const summary = await analytics.summary({ from: from.toISOString(), to: to.toISOString(), interval })
      times.push(performance.now() - t0)
      buckets = summary.series.length
      logins = summary.series.reduce((n, b) => n + b.logins, 0)
    }
    const [first, ...later] = times
    console.log(`summary by ${interval} over 365 days: first ${first.toFixed(0)} ms, then median ${median(later).toFixed(1)} ms (min ${Math.min(...later).toFixed(1)}, max ${Math.max(...later).toFixed(1)}; ${runs} runs), ${buckets} buckets, ${logins.toLocaleString('en')} logins`)
  }
  const { rows } = await sql<{ queryPlan: string }>`explain (analyze, buffers)
    select date_trunc('day', created_at at time zone 'UTC') at time zone 'UTC' as start, action, count(*)::int, count(distinct user_id)::int
    from user_audit_log where action = any(${['user.created', 'auth.login', 'auth.login_failed', 'auth.mfa_failed', 'auth.lockout']}::text[])
      and created_at >= ${from} and created_at < ${to} group by 1, 2`.execute(db)
  console.log(rows.map(r => Object.values(r)[0]).join('\n'))
  const totals = await sql<{ queryPlan: string }>`explain analyze select count(*) filter (where deleted_at is null) from users where erased_at is null`.execute(db)
  console.log(totals.rows.map(r => Object.values(r)[0]).join('\n'))
} finally {
  await db.destroy()
  await bench.drop()
}

import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

// GET /api/v1/analytics/summary (CONTRACT.md, "Analytics").

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

interface Bucket { start: string, signups: number, logins: number, activeUsers: number, failedLogins: number, lockouts: number }
interface Summary { totals: { users: number, active: number, suspended: number, pending: number, deleted: number }, series: Bucket[] }

const summaryOf = async (query: Record<string, string>, caller: { token: string } = admin) => {
  const res = await as(app, caller, { method: 'GET', url: `/api/v1/analytics/summary?${new URLSearchParams(query)}` })
  if (res.statusCode !== 200) throw new Error(`summary: ${res.statusCode} ${res.body}`)
  return res.json().data as Summary
}
const FIGURES = ['signups', 'logins', 'activeUsers', 'failedLogins', 'lockouts'] as const
/** Only the buckets where something happened. */
const busy = (series: Bucket[]) => series.filter(b => FIGURES.some(f => b[f] !== 0))
const login = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })

t.test('figures from a known sequence of actions, per day, week and month', async t => {
  const startedAt = new Date()
  // The sequence, through HTTP: two registrations, three logins of two users, five wrong passwords
  // that lock the second account, a refused sixth attempt, a suspension and a deletion.
  const [email1, email2] = [uniqueEmail('an1'), uniqueEmail('an2')]
  const users: string[] = []
  for (const email of [email1, email2]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'Ana', lastName: 'Lytics' } })
    t.equal(res.statusCode, 201, 'register')
    users.push(res.json().data.id)
  }
  for (const email of [email1, email1, email2]) t.equal((await login(email, PASSWORD)).statusCode, 200, 'login')
  for (let i = 0; i < 5; i++) t.equal((await login(email2, 'Wrong-Password-1')).statusCode, 401, 'wrong password')
  t.equal((await login(email2, PASSWORD)).statusCode, 429, 'locked')
  t.equal((await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${users[0]}`, payload: { status: 'suspended' } })).statusCode, 200, 'suspend')
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${users[1]}` })).statusCode, 204, 'delete')

  // The audit rows those actions wrote, in order.
  const { rows } = await sql<{ action: string, userId: string, actorId: string | null, changes: unknown }>`
    select action, user_id, actor_id, changes from user_audit_log
    where user_id = any(${users}::uuid[]) and action in ('user.created', 'auth.login', 'auth.login_failed', 'auth.lockout')
    order by seq`.execute(db)
  t.same(rows.map(r => `${r.action} ${users.indexOf(r.userId)}`), [
    'user.created 0', 'user.created 1', 'auth.login 0', 'auth.login 0', 'auth.login 1',
    'auth.login_failed 1', 'auth.login_failed 1', 'auth.login_failed 1', 'auth.login_failed 1', 'auth.login_failed 1', 'auth.lockout 1'
  ], 'the audit trail of the sequence: the fifth failure locks the account once, the refused attempt writes nothing')

  // Today, the whole sequence is in the current bucket.
  const now = await summaryOf({ from: startedAt.toISOString(), to: new Date(Date.now() + 1000).toISOString() })
  const today = now.series.reduce((sum, b) => ({ signups: sum.signups + b.signups, logins: sum.logins + b.logins, failedLogins: sum.failedLogins + b.failedLogins, lockouts: sum.lockouts + b.lockouts }), { signups: 0, logins: 0, failedLogins: 0, lockouts: 0 })
  if (process.env.DATABASE_URL) {
    // A shared server: other test files may be writing audit rows right now too.
    t.ok(today.signups >= 2 && today.logins >= 3 && today.failedLogins >= 5 && today.lockouts >= 1, 'at least the sequence (a shared database)')
  } else {
    t.same(today, { signups: 2, logins: 3, failedLogins: 5, lockouts: 1 }, 'exactly the sequence')
  }

  // The same rows spread over known days of January and February of a year with 2001's calendar
  // (Monday the 1st, not leap; Gregorian years 400 apart, and 1917 to 2001 28 apart, share it),
  // picked at random: closed buckets are computed once and stored, so a year another run of this
  // file filled would not show this run's rows. Created on the 1st and 2nd, logins on the 2nd
  // (user 0) and 9th (users 0 and 1), the failures and the lockout on 1 February.
  const year = [1917, 1945, 1973, 2001][Math.floor(Math.random() * 4)] - 400 * Math.floor(Math.random() * 3)
  const day = (d: number, minute = 0) => new Date(Date.UTC(year, 0, d, 10, minute))
  const iso = (d: number) => new Date(Date.UTC(year, 0, d)).toISOString()
  const logins = [day(2), day(9), day(9, 1)]
  const failures = [0, 1, 2, 3, 4].map(m => day(32, m))
  const placed = rows.map(r => ({
    ...r,
    createdAt: r.action === 'user.created' ? day(1 + users.indexOf(r.userId)) : r.action === 'auth.login' ? logins.shift()! : r.action === 'auth.lockout' ? day(32, 4) : failures.shift()!
  }))
  await db.insertInto('userAuditLog').values(placed.map(r => ({ action: r.action, userId: r.userId, actorId: r.actorId, changes: JSON.stringify(r.changes), createdAt: r.createdAt }))).execute()
  const range = { from: iso(1), to: iso(33) }
  const [days, weeks, months] = await Promise.all((['day', 'week', 'month'] as const).map(async interval => (await summaryOf({ ...range, interval })).series))

  t.equal(days.length, 32, 'a bucket for each day of [from, to), empty ones included')
  t.same(busy(days), [
    { start: iso(1), signups: 1, logins: 0, activeUsers: 0, failedLogins: 0, lockouts: 0 },
    { start: iso(2), signups: 1, logins: 1, activeUsers: 1, failedLogins: 0, lockouts: 0 },
    { start: iso(9), signups: 0, logins: 2, activeUsers: 2, failedLogins: 0, lockouts: 0 },
    { start: iso(32), signups: 0, logins: 0, activeUsers: 0, failedLogins: 5, lockouts: 1 }
  ], 'per day')
  t.same(weeks.map(w => w.start), [1, 8, 15, 22, 29].map(iso), 'weeks start on Monday')
  t.same(busy(weeks), [
    { start: iso(1), signups: 2, logins: 1, activeUsers: 1, failedLogins: 0, lockouts: 0 },
    { start: iso(8), signups: 0, logins: 2, activeUsers: 2, failedLogins: 0, lockouts: 0 },
    { start: iso(29), signups: 0, logins: 0, activeUsers: 0, failedLogins: 5, lockouts: 1 }
  ], 'per week')
  t.same(months, [
    { start: iso(1), signups: 2, logins: 3, activeUsers: 2, failedLogins: 0, lockouts: 0 },
    { start: iso(32), signups: 0, logins: 0, activeUsers: 0, failedLogins: 5, lockouts: 1 }
  ], 'per month: user 0 logged in twice but is one active user')

  const partial = await summaryOf({ from: new Date(day(9).getTime() + 30_000).toISOString(), to: day(9, 2).toISOString(), interval: 'month' })
  t.same(partial.series.map(b => b.start), [iso(1)], 'the first bucket starts before from')
  t.equal(partial.series[0].logins, 1, 'but counts only from from')
  t.same((await summaryOf({ ...range, interval: 'month' })).series, months, 'the stored buckets give the same figures')

  const totals = now.totals
  t.equal(totals.users, totals.active + totals.suspended + totals.pending, 'users = active + suspended + pending')
  const latest = (await summaryOf({})).totals
  if (!process.env.DATABASE_URL) {
    // This file's database: the admin, the two registered users (one suspended, one deleted).
    t.same(latest, { users: 2, active: 1, suspended: 1, pending: 0, deleted: 1 }, 'the users table now')
  } else {
    t.ok(latest.suspended >= 1 && latest.deleted >= 1 && latest.active >= 1, 'the users table now (a shared database)')
  }
})

t.test('the range: defaults, bounds and validation', async t => {
  const days = await summaryOf({})
  const midnight = new Date(new Date().toISOString().slice(0, 10)).toISOString()
  t.equal(days.series.length, 31, 'default: the last 30 days, by day (the first bucket partly)')
  t.equal(days.series.at(-1)!.start, midnight, 'ending today')
  const weeks = await summaryOf({ interval: 'week' })
  t.ok(weeks.series.length === 13 || weeks.series.length === 12, 'by week: the last 12 weeks')
  const months = await summaryOf({ interval: 'month' })
  t.ok(months.series.length === 13 || months.series.length === 12, 'by month: the last 365 days')
  t.same((await summaryOf({ from: '2001-01-01T00:00:00Z', to: '2001-01-01T00:00:00Z' })).series, [], 'from = to: an empty range')
  t.equal((await summaryOf({ from: '2000-01-01T00:00:00Z', to: '2001-01-01T00:00:00Z' })).series.length, 366, 'a leap year by day fits')

  const bad = (query: Record<string, string>, message: string) => as(app, admin, { method: 'GET', url: `/api/v1/analytics/summary?${new URLSearchParams(query)}` })
    .then(res => assertError(t, res, 400, 'VALIDATION_ERROR', message))
  await bad({ from: '2001-02-01T00:00:00Z', to: '2001-01-01T00:00:00Z' }, 'from after to')
  await bad({ from: '2000-01-01T00:00:00Z', to: '2001-01-02T00:00:00Z' }, 'longer than 366 days')
  await bad({ from: '2000-01-01T00:00:00Z' }, 'from too long ago for the default to (now)')
  await bad({ interval: 'hour' }, 'an unknown interval')
  await bad({ from: 'yesterday' }, 'not a timestamp')
})

t.test('needs analytics:read', async t => {
  const plain = await createUser(app)
  assertError(t, await as(app, plain, { method: 'GET', url: '/api/v1/analytics/summary' }), 403, 'FORBIDDEN', 'a plain user')
  assertError(t, await app.inject({ method: 'GET', url: '/api/v1/analytics/summary' }), 401, 'UNAUTHORIZED', 'anonymous')

  const me = await as(app, admin, { method: 'GET', url: '/api/v1/auth/me' })
  t.ok(me.json().data.permissions.includes('analytics:read') && me.json().data.permissions.includes('webhooks:manage'), 'admin has the new permissions')
  const role = await as(app, admin, { method: 'POST', url: '/api/v1/roles', payload: { name: `analyst-${randomUUID().slice(0, 8)}`, description: 'Reads the figures', permissions: ['analytics:read'] } })
  t.equal(role.statusCode, 201, 'a role may hold analytics:read')
  const analyst = await createUser(app, { roles: [role.json().data.name] })
  t.ok((await summaryOf({}, analyst)).series.length > 0, 'and its holder may read the summary')
  assertError(t, await as(app, analyst, { method: 'GET', url: '/api/v1/users' }), 403, 'FORBIDDEN', 'nothing more')
})

import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { as, build, createUser, uniqueEmail } from './helper.js'
import { RETENTION_BATCH, RETENTION_JOB, type RetentionKind } from '../src/services/retention.js'

/**
 * Retention with short ages is checked on rows back-dated by SQL rather than by waiting. The
 * test database may be shared with other test files running now (PostgreSQL mode), so the two
 * ages only this file sets reach far back: soft-deleted users are erased 100 years after their
 * deletion, audit rows after 1000 years (test/analytics.test.ts places its rows as early as
 * 1117, which must stay). The rows this file back-dates lie beyond them; nobody else's do.
 * RETENTION_ENDED stays at its default (7 d), RETENTION_INTERVAL 0: runs only when called.
 */
const ENV = { RETENTION_DELETED_USERS: '36500d', RETENTION_AUDIT: '365000d', RETENTION_INTERVAL: '0' }
const DAY = 86_400_000
const ago = (ms: number) => new Date(Date.now() - ms)
const PURGED_USER_DELETION = new Date('1900-01-01T00:00:00Z')
const OLD_AUDIT = new Date('0900-01-01T00:00:00Z')
const NEWER_AUDIT = new Date('1100-01-01T00:00:00Z')

const app = await build(t, {}, ENV)
const db = app.database.db
const admin = await createUser(app, { roles: ['admin'] })

const backDateDeletion = (id: string, at: Date) => sql`update users set deleted_at = ${at} where id = ${id}`.execute(db)
const auditOf = async (userId: string, query = '') =>
  (await as(app, admin, { method: 'GET', url: `/api/v1/audit-logs?userId=${userId}&limit=100${query}` })).json().data as Array<{ action: string, actorId: string | null, ip: string | null, userAgent: string | null, requestId: string | null, createdAt: string }>
const metricOf = (text: string, kind: string) => Number(new RegExp(`^retention_purged_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN)

t.test('soft-deleted users are erased after RETENTION_DELETED_USERS, as POST /erase does', async t => {
  const due = await createUser(app, { firstName: 'Retained', lastName: `Gone${randomUUID().slice(0, 6)}` })
  const recent = await createUser(app)
  const restored = await createUser(app)
  const live = await createUser(app)
  await as(app, due, { method: 'PATCH', url: `/api/v1/users/${due.id}`, headers: { 'user-agent': 'RetainedBrowser/1' }, payload: { profile: { phone: '+44 20 7946 0123' } } })
  for (const user of [due, recent, restored]) {
    t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}` })).statusCode, 204)
  }
  await backDateDeletion(due.id, PURGED_USER_DELETION)
  await backDateDeletion(recent.id, new Date('1950-01-01T00:00:00Z'))
  await backDateDeletion(restored.id, PURGED_USER_DELETION)
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${restored.id}/restore` })).statusCode, 200, 'restored before the purge')
  const trailBefore = await auditOf(due.id)

  const report = await app.retention.run()
  t.ok(report && report.deleted_users >= 1, 'the run erased users')

  for (const url of [`/api/v1/users/${due.id}`, `/api/v1/users/${due.id}/export`]) {
    t.equal((await as(app, admin, { method: 'GET', url })).statusCode, 404, `GET ${url.replace(due.id, ':id')}: 404, erased`)
  }
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${due.id}/restore` })).statusCode, 404, 'irreversible: it cannot be restored')
  const recentRow = await db.selectFrom('users').select(['deletedAt', 'erasedAt']).where('id', '=', recent.id).executeTakeFirstOrThrow()
  t.ok(recentRow.deletedAt && !recentRow.erasedAt, 'deleted after the cutoff: still soft-deleted, not erased')
  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${recent.id}/restore` })).statusCode, 200, 'and it can still be restored')
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${restored.id}` })).statusCode, 200, 'restored: kept')
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${live.id}` })).statusCode, 200, 'live: kept')

  // Audited as POST /erase is, by no one (requestId "retention"); the trail stays, without PII.
  const trail = await auditOf(due.id)
  t.equal(trail.length, trailBefore.length + 1, 'every row kept, plus user.erased')
  const erased = trail.filter(a => a.action === 'user.erased')
  t.equal(erased.length, 1, 'one user.erased')
  t.equal(erased[0]?.actorId, null, 'by no one')
  t.equal(erased[0]?.requestId, 'retention', 'marked as retention')
  const text = JSON.stringify(trail)
  for (const pii of [due.email, 'Retained', 'RetainedBrowser/1', '7946 0123']) t.notOk(text.includes(pii), `the trail no longer holds ${pii}`)
  for (const row of trail) t.equal(row.userAgent, null, `${row.action}: no user agent`)
  const row = await db.selectFrom('users').selectAll().where('id', '=', due.id).executeTakeFirstOrThrow()
  t.notOk(JSON.stringify(row).includes(due.email), 'the users row no longer holds the email')
  t.ok(row.erasedAt, 'erased_at set')

  // A user listed for erasure and restored before its turn: erase checks the deletion again under the row's lock.
  const system = { actor: null, actorId: null, ip: null, userAgent: null, requestId: 'test' }
  t.equal(await app.usersService.erase(system, restored.id, new Date()), false, 'a restored user is not erased by retention')
  t.equal(await app.usersService.erase(system, recent.id, new Date('1926-01-01T00:00:00Z')), false, 'nor one deleted after the cutoff')
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${restored.id}` })).statusCode, 200, 'still there')

  const again = await app.retention.run()
  t.equal((await auditOf(due.id, '&action=user.erased')).length, 1, 'a later run does not erase it again')
  t.ok(again, 'a second run ran')
})

t.test('audit rows older than RETENTION_AUDIT are deleted, newer ones kept; the trail stays append-only otherwise', async t => {
  const user = await createUser(app)
  await db.insertInto('userAuditLog').values([
    { action: 'user.updated', userId: user.id, changes: JSON.stringify({ n: 'old' }), createdAt: OLD_AUDIT },
    { action: 'user.updated', userId: user.id, changes: JSON.stringify({ n: 'newer' }), createdAt: NEWER_AUDIT }
  ]).execute()
  t.equal((await auditOf(user.id, '&action=user.updated')).length, 2)
  const report = await app.retention.run()
  t.ok(report && report.audit >= 1, 'the run deleted audit rows')
  const left = await auditOf(user.id, '&action=user.updated')
  t.same(left.map(a => a.createdAt), [NEWER_AUDIT.toISOString()], 'the old row went, the newer one stays')
  t.ok((await auditOf(user.id, '&action=user.created')).length === 1, 'fresh rows stay')

  // Migration 020: a delete passes only for rows older than the cutoff a purge declares in its transaction.
  await t.rejects(db.deleteFrom('userAuditLog').where('userId', '=', user.id).execute(), /append-only/, 'an undeclared delete is refused')
  await t.rejects(db.transaction().execute(async trx => {
    await sql`select set_config('app.audit_purge_before', ${new Date('1000-01-01T00:00:00Z').toISOString()}, true)`.execute(trx)
    await trx.deleteFrom('userAuditLog').where('userId', '=', user.id).where('createdAt', '=', NEWER_AUDIT).execute()
  }), /append-only/, 'a row newer than the declared cutoff is refused')
  await t.rejects(db.updateTable('userAuditLog').set({ action: 'user.deleted' }).where('userId', '=', user.id).execute(), /append-only/, 'updates are still refused')
})

/** Rows of each always-on kind: `gone` must be purged by a run, `kept` not. */
async function seedAlwaysOn (user: { id: string }) {
  const old = ago(8 * DAY)
  const recent = ago(DAY)
  const future = new Date(Date.now() + DAY)
  const past = ago(1000)
  const ids = async (table: string, rows: Array<Record<string, unknown>>, key = 'id') =>
    (await (db as any).insertInto(table).values(rows).returning(key).execute()).map((r: Record<string, string>) => r[key]) as string[]
  const split = async (table: string, gone: Array<Record<string, unknown>>, kept: Array<Record<string, unknown>>, key = 'id') =>
    ({ table, key, gone: await ids(table, gone, key), kept: await ids(table, kept, key) })
  const token = () => randomUUID()
  const session = (values: Record<string, unknown>) => ({ userId: user.id, expiresAt: future, ...values })
  const sessions = await split('userSessions',
    [session({ revokedAt: old }), session({ expiresAt: old })],
    [session({ revokedAt: recent }), session({ expiresAt: recent }), session({})])
  const liveSession = sessions.kept[2]
  const [webhookId] = await ids('webhooks', [{ url: 'https://hooks.example.test/retention', events: ['*'], active: false, secretSealed: 'sealed' }])
  const delivery = (values: Record<string, unknown>) => ({ webhookId, eventId: randomUUID(), eventType: 'user.updated', ...values })
  const email = (values: Record<string, unknown>) => ({ toAddress: uniqueEmail('retention'), template: 'verify_email', payload: JSON.stringify({ token: token() }), ...values })
  const invitation = (values: Record<string, unknown>) => ({ email: uniqueEmail('invited'), tokenHash: token(), expiresAt: future, ...values })
  const idempotency = (expiresAt: Date) => ({ scope: `test:${randomUUID()}`, key: randomUUID(), requestHash: 'h', lockedUntil: expiresAt, expiresAt })
  const cases: Partial<Record<RetentionKind, { table: string, key: string, gone: string[], kept: string[] }>> = {
    sessions,
    refresh_tokens: await split('refreshTokens',
      [{ sessionId: liveSession, userId: user.id, tokenHash: token(), expiresAt: old, spentAt: old }],
      // Spent but unexpired, of a live login: kept for reuse detection.
      [{ sessionId: liveSession, userId: user.id, tokenHash: token(), expiresAt: future, spentAt: old },
        { sessionId: liveSession, userId: user.id, tokenHash: token(), expiresAt: recent }]),
    password_reset_tokens: await split('passwordResetTokens',
      [{ userId: user.id, tokenHash: token(), expiresAt: future, usedAt: old }, { userId: user.id, tokenHash: token(), expiresAt: old }],
      [{ userId: user.id, tokenHash: token(), expiresAt: future, usedAt: recent }, { userId: user.id, tokenHash: token(), expiresAt: future }]),
    email_verification_tokens: await split('emailVerificationTokens',
      [{ userId: user.id, email: uniqueEmail(), tokenHash: token(), expiresAt: old }],
      [{ userId: user.id, email: uniqueEmail(), tokenHash: token(), expiresAt: recent }, { userId: user.id, email: uniqueEmail(), tokenHash: token(), expiresAt: future }]),
    mfa_challenges: await split('mfaChallenges',
      [{ userId: user.id, tokenHash: token(), amr: ['pwd'], method: 'password', expiresAt: old }],
      [{ userId: user.id, tokenHash: token(), amr: ['pwd'], method: 'password', expiresAt: future, spentAt: recent }, { userId: user.id, tokenHash: token(), amr: ['pwd'], method: 'password', expiresAt: future }]),
    invitations: await split('invitations',
      [invitation({ expiresAt: old }), invitation({ revokedAt: old })],
      [invitation({ expiresAt: old, acceptedAt: old }), invitation({ expiresAt: recent }), invitation({})]),
    oidc_auth_requests: await split('oidcAuthRequests',
      [{ stateHash: token(), browserHash: 'b', provider: 'idp', nonce: 'n', codeVerifier: 'v', redirectUri: 'https://app.example.test/cb', expiresAt: past }],
      [{ stateHash: token(), browserHash: 'b', provider: 'idp', nonce: 'n', codeVerifier: 'v', redirectUri: 'https://app.example.test/cb', expiresAt: future }], 'stateHash'),
    oidc_login_codes: await split('oidcLoginCodes',
      [{ codeHash: token(), userId: user.id, provider: 'idp', expiresAt: past }],
      [{ codeHash: token(), userId: user.id, provider: 'idp', expiresAt: future }], 'codeHash'),
    webauthn_challenges: await split('webauthnChallenges',
      [{ purpose: 'login', challenge: 'a'.repeat(32), expiresAt: past }],
      [{ purpose: 'login', challenge: 'b'.repeat(32), expiresAt: future }]),
    emails: await split('emailOutbox',
      [email({ sentAt: old }), email({ createdAt: old })],
      [email({ sentAt: recent }), email({ createdAt: recent }), email({})]),
    webhook_deliveries: await split('webhookDeliveries',
      [delivery({ status: 'succeeded', createdAt: old }), delivery({ status: 'failed', createdAt: old })],
      [delivery({ status: 'succeeded', createdAt: recent }), delivery({ status: 'pending', createdAt: old })]),
    idempotency_keys: await split('idempotencyKeys', [idempotency(past)], [idempotency(future)], 'key')
  }
  const eventRow = (createdAt: Date) => ({ id: randomUUID(), type: 'user.updated', userId: user.id, data: JSON.stringify({}), createdAt })
  cases.events = await split('events', [eventRow(ago(3 * DAY))], [eventRow(ago(DAY))], 'seq')
  return cases
}

const exists = async (table: string, key: string, value: string) =>
  (await (db as any).selectFrom(table).select(key).where(key, '=', value).execute()).length > 0

t.test('always on: spent and expired tokens, ended logins, sent emails, finished deliveries, expired keys and old events are purged past their age; live ones stay', async t => {
  const user = await createUser(app)
  const cases = await seedAlwaysOn(user)
  const exportedSessions = async () => ((await as(app, admin, { method: 'GET', url: `/api/v1/users/${user.id}/export` })).json().data.sessions as Array<{ id: string }>).map(s => s.id)
  for (const id of cases.sessions!.gone) t.ok((await exportedSessions()).includes(id), 'an ended login is in the export before the purge')

  const report = await app.retention.run()
  t.ok(report, 'the run ran')
  for (const [kind, { table, key, gone, kept }] of Object.entries(cases)) {
    t.ok(report![kind as RetentionKind] >= gone.length, `${kind}: counted (${report![kind as RetentionKind]})`)
    for (const value of gone) t.notOk(await exists(table, key, value), `${kind}: an ended row past its age is purged`)
    for (const value of kept) t.ok(await exists(table, key, value), `${kind}: a live row, or one ended within its age, stays`)
  }
  const listed = await exportedSessions()
  for (const id of cases.sessions!.gone) t.notOk(listed.includes(id), 'an old ended login is gone from the export')
  for (const id of cases.sessions!.kept) t.ok(listed.includes(id), 'a live or recently ended login is still exported')
  t.equal((await as(app, user, { method: 'GET', url: '/api/v1/auth/me' })).statusCode, 200, 'the user\'s own login is untouched')
})

t.test('the retention job runs the purge, and /metrics shows the rows purged by kind and the last run', async t => {
  const user = await createUser(app)
  await db.insertInto('userAuditLog').values([0, 1, 2].map(n => ({ action: 'user.updated', userId: user.id, changes: JSON.stringify({ n }), createdAt: OLD_AUDIT }))).execute()
  const scrape = async () => (await app.inject({ url: '/metrics' })).body
  const before = metricOf(await scrape(), 'audit')
  await app.jobs.enqueue(db, RETENTION_JOB, {})
  if (await app.jobs.runDue(RETENTION_JOB) === 0) {
    // A shared database: another test file's app (without RETENTION_AUDIT) took the job first.
    t.comment('the retention job was taken by another app on the shared database; running the purge here')
    t.ok(await app.retention.run())
  }
  t.same(await auditOf(user.id, '&action=user.updated'), [], 'the job purged the old rows')
  const text = await scrape()
  t.ok(metricOf(text, 'audit') - (Number.isNaN(before) ? 0 : before) >= 3, 'retention_purged_total{kind="audit"} counts them')
  for (const kind of ['deleted_users', 'sessions', 'refresh_tokens', 'emails', 'webhook_deliveries', 'idempotency_keys', 'events']) {
    t.ok(metricOf(text, kind) >= 0, `retention_purged_total{kind="${kind}"} is exported`)
  }
  const last = Number(/^retention_last_run_timestamp_seconds (\S+)/m.exec(text)?.[1])
  t.ok(last > Date.now() / 1000 - 600 && last <= Date.now() / 1000 + 1, 'retention_last_run_timestamp_seconds is the last run')
})

t.test('two instances purging at once: one runs, each row is purged once, no errors', { skip: !process.env.DATABASE_URL && 'instances share a database only on PostgreSQL (DATABASE_URL); the embedded one belongs to one process' }, async t => {
  const other: FastifyInstance = await build(t, {}, ENV)
  const user = await createUser(app)
  const rows = RETENTION_BATCH * 2 + 500
  await sql`insert into user_audit_log (action, user_id, created_at)
    select 'user.updated', ${user.id}::uuid, ${OLD_AUDIT}::timestamptz from generate_series(1, ${rows})`.execute(db)
  const deletedUsers = await Promise.all([0, 1, 2].map(() => createUser(app)))
  for (const deleted of deletedUsers) {
    await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${deleted.id}` })
    await backDateDeletion(deleted.id, PURGED_USER_DELETION)
  }
  const auditRows = async () => (await sql<{ n: number }>`select count(*)::int as n from user_audit_log where user_id = ${user.id} and created_at = ${OLD_AUDIT}`.execute(db)).rows[0].n
  t.equal(await auditRows(), rows)

  // Another test file's app may hold the purge right now (it purges no audit rows): try again then.
  let reports: Array<Awaited<ReturnType<FastifyInstance['retention']['run']>>> = []
  for (let i = 0; i < 50; i++) {
    reports = await Promise.all([app.retention.run(), other.retention.run()])
    if (reports.some(Boolean)) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const ran = reports.filter(r => r !== undefined)
  t.equal(ran.length, 1, 'one instance ran the purge; the other found it running and did nothing')
  t.equal(ran[0]?.audit, rows, `each audit row purged once (${rows}, over ${Math.ceil(rows / RETENTION_BATCH)} batches)`)
  t.equal(await auditRows(), 0, 'none left')
  for (const deleted of deletedUsers) {
    t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${deleted.id}` })).statusCode, 404, 'erased')
    t.equal((await auditOf(deleted.id, '&action=user.erased')).length, 1, 'erased once')
  }
})

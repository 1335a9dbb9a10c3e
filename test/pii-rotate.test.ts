import t, { type Test } from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import { spawn } from 'node:child_process'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { as, build, ownDatabase, PASSWORD } from './helper.js'

// `npm run pii:rotate` (CONTRACT.md "Privacy and retention"): seals the clear values when keys are
// first configured, reseals what an older key sealed under the current one, in batches, while the
// service runs, and a second run finds nothing; then the old key can go.

const keyA = randomBytes(32).toString('base64')
const keyB = randomBytes(32).toString('base64')
const env = await ownDatabase(t)
const embedded = !process.env.DATABASE_URL
const tag = randomUUID().replaceAll('-', '').slice(0, 10)
const client = (n: number) => ({ remoteAddress: `203.0.113.${n}`, headers: { 'user-agent': `rotate-agent/${tag}/${n}` } })

/** Runs `npm run pii:rotate` (its script) on the test's database; resolves to its exit code and output. */
function rotate (keys: string): Promise<{ code: number | null, out: string }> {
  return new Promise(resolve => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/pii-rotate.ts'], {
      env: { ...process.env, ...env, PII_ENCRYPTION_KEYS: keys, PII_ROTATE_BATCH: '3', LOG_LEVEL: 'silent' }
    })
    let out = ''
    child.stdout.on('data', chunk => { out += chunk })
    child.stderr.on('data', chunk => { out += chunk })
    child.on('close', code => resolve({ code, out }))
  })
}

const counts = (out: string, table: string) => {
  const match = new RegExp(`^${table}: (\\d+) rows read, (\\d+) values resealed from an older key, (\\d+) sealed from clear, (\\d+) rows written`, 'm').exec(out)
  return match ? match.slice(1).map(Number) : undefined
}

interface Person { id: string, email: string, phone: string, bio: string, n: number }
const people: Person[] = []

/** A user with a profile, logged in from its own address and browser, its profile then changed (a session, audit rows, events). */
async function person (app: FastifyInstance): Promise<Person> {
  const n = people.length + 1
  const p = { id: '', email: `rot-${n}-${tag}@example.test`, phone: `+1 555 01${String(n).padStart(2, '0')} ${tag.replace(/\D/g, '').slice(0, 3) || '7'}`, bio: `bio ${n} ${tag}`, n }
  const reg = await app.inject({ method: 'POST', url: '/api/v1/auth/register', ...client(n), payload: { email: p.email, password: PASSWORD, firstName: 'Rot', lastName: `Ate${n}` } })
  if (reg.statusCode !== 201) throw new Error(reg.body)
  p.id = reg.json().data.id ?? reg.json().data.user.id
  const token = await login(app, p)
  const res = await app.inject({ method: 'PUT', url: `/api/v1/users/${p.id}/profile`, ...client(n), headers: { ...client(n).headers, authorization: `Bearer ${token}` }, payload: { phone: p.phone, bio: p.bio } })
  if (res.statusCode !== 200) throw new Error(res.body)
  people.push(p)
  return p
}

async function login (app: FastifyInstance, p: { email: string, n: number }) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', ...client(p.n), payload: { email: p.email, password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(res.body)
  return res.json().data.accessToken as string
}

/** Everything about each person, as the API gives it back: clear. */
async function readsBack (t: Test, app: FastifyInstance, label: string) {
  for (const p of people) {
    const token = await login(app, p)
    const me = await as(app, { token }, { method: 'GET', url: `/api/v1/users/${p.id}` })
    t.same([me.json().data.profile?.phone, me.json().data.profile?.bio], [p.phone, p.bio], `${label}: person ${p.n}'s profile`)
    const sessions = await as(app, { token }, { method: 'GET', url: '/api/v1/auth/sessions' })
    t.ok(sessions.json().data.every((s: { ip: string, userAgent: string }) => s.ip === client(p.n).remoteAddress && s.userAgent === client(p.n).headers['user-agent']), `${label}: person ${p.n}'s sessions`)
    const exported = await as(app, { token }, { method: 'GET', url: `/api/v1/users/${p.id}/export` })
    const trail = exported.json().data.auditTrail as Array<{ ip: string | null, changes: { profile?: { to: { bio: string } } } | null }>
    t.ok(trail.some(a => a.ip === client(p.n).remoteAddress) && trail.some(a => a.changes?.profile?.to.bio === p.bio), `${label}: person ${p.n}'s audit trail`)
  }
}

/** How many values of any text or jsonb column of the application's tables hold this text. */
async function occurrences (app: FastifyInstance, text: string) {
  const { rows } = await sql<{ table: string, column: string }>`select table_name as table, column_name as column from information_schema.columns
    where table_schema = 'public' and data_type in ('text', 'jsonb')`.execute(app.database.db)
  let total = 0
  for (const { table, column } of rows) {
    const { rows: [{ n }] } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where strpos(${sql.ref(column)}::text, ${text}) > 0`.execute(app.database.db)
    total += n
  }
  return total
}

t.test('clear data, then keys A, then B before A, then B alone', async t => {
  // Written before any key is configured.
  let app = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: '' })
  await person(app)
  await person(app)
  await app.close()

  const first = await rotate(`a:${keyA}`)
  t.equal(first.code, 0, 'the first rotation runs')
  t.ok((counts(first.out, 'user_profiles')?.[2] ?? 0) >= 4, 'it sealed the clear phones and bios')
  t.ok((counts(first.out, 'user_sessions')?.[2] ?? 0) >= 4, 'and the sessions\' ip and user agent')

  app = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: `a:${keyA}` })
  t.equal(await occurrences(app, people[0].bio), 0, 'no clear bio is left anywhere')
  t.equal(await occurrences(app, client(1).headers['user-agent']), 0, 'nor a clear user agent')
  await person(app)
  await readsBack(t, app, 'under A')
  await app.close()

  app = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: `b:${keyB},a:${keyA}` })
  await person(app)
  await readsBack(t, app, 'under B, A')
  t.ok(await occurrences(app, 'pii1.a.') > 0, 'values under A remain before the rotation')
  // PostgreSQL: the rotation runs while the service does (the embedded database has one owner).
  if (embedded) await app.close()
  const second = await rotate(`b:${keyB},a:${keyA}`)
  t.equal(second.code, 0, 'the rotation to B runs')
  t.ok((counts(second.out, 'user_profiles')?.[1] ?? 0) >= 6, 'it resealed the profiles sealed under A')
  t.ok((counts(second.out, 'user_audit_log')?.[1] ?? 0) > 0, 'and the audit rows')
  t.ok((counts(second.out, 'events')?.[1] ?? 0) > 0, 'and the events')
  t.match(second.out, /forgotten: a/, 'key id a is forgotten')
  const third = await rotate(`b:${keyB},a:${keyA}`)
  t.ok(['user_profiles', 'user_sessions', 'user_audit_log', 'events', 'idempotency_keys'].every(table => counts(third.out, table)?.[3] === 0), 'a second run writes nothing')
  if (!embedded) await app.close()

  app = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: `b:${keyB}` })
  t.equal(await occurrences(app, 'pii1.a.'), 0, 'nothing is left under A')
  await readsBack(t, app, 'under B alone')
  await app.close()
})

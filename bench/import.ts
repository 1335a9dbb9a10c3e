/**
 * The import of 1000 users with legacy password hashes (issue 16: "well under a second"), against
 * the fastest plausible plain `pg` insert of the same rows, in one run:
 *
 *   npx tsx bench/import.ts     # DATABASE_URL names the server, default postgres://postgres@127.0.0.1:5432
 *
 * - service: POST /api/v1/users/import over real HTTP (the app listening on 127.0.0.1), 1000 new
 *   users each with a bcrypt hash, half of them with a profile, as an admin. It writes users,
 *   user_roles, user_profiles (and the read model's triggers) and one audit row per user.
 * - baseline: one multi-row INSERT of the same 1000 users (email, hash, names) into users, with a
 *   plain pg client holding its connection: what the users rows alone cost the database.
 * - same writes: the import's rows by plain pg in one transaction, one multi-row INSERT per table
 *   (users with their read-model columns, user_roles, user_profiles, user_audit_log): what the
 *   database itself needs for the import's work (its triggers included), without the service.
 * Each run imports fresh emails; the median of BENCH_RUNS (7) runs is printed, after one warm-up.
 * It runs in a database of its own (bench_<stamp>_<pid>, migrated, dropped at the end).
 */
import pg from 'pg'
import bcrypt from 'bcryptjs'
import { randomBytes, randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createBenchDatabase } from './lib/database.js'

const database = await createBenchDatabase(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432')
const url = database.url
const runs = Number(process.env.BENCH_RUNS ?? 7)
const COUNT = 1000
const ADMIN = { email: `import-admin-${randomUUID().slice(0, 8)}@example.test`, password: 'Bench-Admin-Password-1' }

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const hash = await bcrypt.hash('Legacy-Password-42', 10)
const usersOf = (run: string) => Array.from({ length: COUNT }, (_, i) => ({
  email: `import-${run}-${i}@example.test`,
  firstName: `First${i}`,
  lastName: `Last${i}`,
  passwordHash: hash,
  ...(i % 2 ? { profile: { locale: 'en-GB', phone: '+44 20 7946 0000' } } : {})
}))

const app = await buildApp(loadConfig({
  DATABASE_URL: url,
  NODE_ENV: 'production',
  LOG_LEVEL: 'warn',
  JWT_SECRET: randomUUID() + randomUUID(),
  MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  ADMIN_EMAIL: ADMIN.email,
  ADMIN_PASSWORD: ADMIN.password,
  RATE_LIMIT_MAX: '1000000000',
  RATE_LIMIT_USER_MAX: '1000000000',
  AUTH_RATE_LIMIT_MAX: '1000000000',
  EMAIL_POLL_INTERVAL: '0',
  // The machine may be shared: load shedding would answer 503 instead of measuring.
  MAX_EVENT_LOOP_DELAY: '0'
}))
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1`
const client = new pg.Client({ connectionString: url })
await client.connect()

try {
  const login = await fetch(`${base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) })
  if (login.status !== 200) throw new Error(`admin login: ${login.status} ${await login.text()}`)
  const { accessToken } = (await login.json() as { data: { accessToken: string } }).data

  async function service (run: string) {
    const body = JSON.stringify({ users: usersOf(run) })
    const started = performance.now()
    const res = await fetch(`${base}/users/import`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` }, body })
    const answer = await res.json() as { data: { created: number } }
    const ms = performance.now() - started
    if (res.status !== 200 || answer.data.created !== COUNT) throw new Error(`import: ${res.status} ${JSON.stringify(answer).slice(0, 300)}`)
    return ms
  }

  async function baseline (run: string) {
    const rows = usersOf(run)
    const values = rows.map((_, i) => `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`).join(', ')
    const params = rows.flatMap(u => [u.email, u.passwordHash, u.firstName, u.lastName])
    const started = performance.now()
    await client.query(`insert into users (email, password_hash, first_name, last_name) values ${values}`, params)
    return performance.now() - started
  }

  const roleId = (await client.query<{ id: string }>('select id from roles where name = \'user\'')).rows[0].id
  const valuesOf = (rows: unknown[][]) => ({
    text: rows.map((row, r) => `(${row.map((_, c) => `$${r * row.length + c + 1}`).join(', ')})`).join(', '),
    params: rows.flat()
  })
  async function sameWrites (run: string) {
    const rows = usersOf(run)
    const started = performance.now()
    await client.query('begin')
    const users = valuesOf(rows.map(u => [u.email, u.passwordHash, u.firstName, u.lastName, ['user'], u.profile ? { bio: null, avatarUrl: null, timezone: null, ...u.profile } : null]))
    const { rows: ids } = await client.query<{ id: string, email: string }>(
      `insert into users (email, password_hash, first_name, last_name, role_names, profile) values ${users.text} returning id, email`, users.params)
    const roles = valuesOf(ids.map(({ id }) => [id, roleId]))
    await client.query(`insert into user_roles (user_id, role_id) values ${roles.text}`, roles.params)
    const profiles = valuesOf(ids.filter((_, i) => rows[i].profile).map(({ id }) => [id, 'en-GB', '+44 20 7946 0000']))
    await client.query(`insert into user_profiles (user_id, locale, phone) values ${profiles.text}`, profiles.params)
    const audit = valuesOf(ids.map(({ id }, i) => ['user.created', id, JSON.stringify({ email: rows[i].email, roles: ['user'] }), 'bench']))
    await client.query(`insert into user_audit_log (action, user_id, changes, request_id) values ${audit.text}`, audit.params)
    await client.query('commit')
    return performance.now() - started
  }

  await service(`warm-${randomUUID().slice(0, 8)}`)
  await baseline(`warm-${randomUUID().slice(0, 8)}`)
  await sameWrites(`warm-${randomUUID().slice(0, 8)}`)
  const timings = { service: [] as number[], baseline: [] as number[], sameWrites: [] as number[] }
  for (let i = 0; i < runs; i++) {
    // Interleaved, so a busy moment of the machine lands on each.
    timings.service.push(await service(randomUUID().slice(0, 8)))
    timings.baseline.push(await baseline(randomUUID().slice(0, 8)))
    timings.sameWrites.push(await sameWrites(randomUUID().slice(0, 8)))
  }
  const line = (name: string, values: number[]) => `  ${name.padEnd(42)} ${median(values).toFixed(1).padStart(7)} ms  (runs: ${values.map(ms => ms.toFixed(0)).join(', ')})`
  console.log(`import of ${COUNT} users with passwordHash, median of ${runs} runs:`)
  console.log(line('service: POST /users/import', timings.service))
  console.log(line('baseline: pg, one multi-row INSERT into users', timings.baseline))
  console.log(line('same writes: pg, one multi-row INSERT a table', timings.sameWrites))
  console.log(`  ratio service/baseline ${(median(timings.service) / median(timings.baseline)).toFixed(1)}x, service/same writes ${(median(timings.service) / median(timings.sameWrites)).toFixed(1)}x`)
} finally {
  await client.end()
  await app.close()
  await database.drop()
}

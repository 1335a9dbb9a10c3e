// The cost of PII_ENCRYPTION_KEYS on the hot reads: get_user and a list page (20 users, exact
// total), each user with a phone and a 200-character bio, served by two instances of the service
// on copies of one database, one in clear and one sealed (npm run pii:rotate), measured in
// interleaved rounds so that the busy machine's drift falls on both alike.
//   npx tsx bench/pii.ts            (BENCH_USERS=20000 BENCH_DURATION=4 BENCH_ROUNDS=4)
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import autocannon from 'autocannon'
import pg from 'pg'

const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const users = Number(process.env.BENCH_USERS ?? 20_000)
const seconds = Number(process.env.BENCH_DURATION ?? 4)
const rounds = Number(process.env.BENCH_ROUNDS ?? 4)
const keys = `bench:${randomBytes(32).toString('base64')}`
const urlOf = (name: string) => { const u = new URL(base); u.pathname = `/${name}`; return u.toString() }
const admin = { ADMIN_EMAIL: 'bench-admin@example.test', ADMIN_PASSWORD: 'Bench-Admin-9' }
const tsx = (script: string, env: NodeJS.ProcessEnv) => execFileSync(process.execPath, ['--import', 'tsx', script, ...(script.endsWith('migrate.ts') ? ['up'] : [])], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'inherit', 'inherit'] })

async function sqlOn (url: string, statement: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try { return await client.query(statement) } finally { await client.end() }
}

for (const name of ['bench_pii_clear', 'bench_pii_sealed']) await sqlOn(base, `drop database if exists ${name} with (force)`)
await sqlOn(base, 'create database bench_pii_clear')
tsx('src/cli/migrate.ts', { DATABASE_URL: urlOf('bench_pii_clear') })
await sqlOn(urlOf('bench_pii_clear'), `
  insert into users (email, password_hash, first_name, last_name, email_verified)
  select 'bench-' || i || '@example.test', 'x', 'First' || i, 'Last' || i, true from generate_series(1, ${users}) i;
  insert into user_roles (user_id, role_id) select u.id, r.id from users u, roles r where r.name = 'user';
  insert into user_profiles (user_id, phone, bio, locale)
  select id, '+1 555 ' || lpad((row_number() over ())::text, 7, '0'), repeat('A bio of some length. ', 9), 'en' from users;`)
await sqlOn(urlOf('bench_pii_clear'), 'vacuum analyze')
await sqlOn(base, 'create database bench_pii_sealed template bench_pii_clear')
const started = Date.now()
tsx('src/cli/pii-rotate.ts', { DATABASE_URL: urlOf('bench_pii_sealed'), PII_ENCRYPTION_KEYS: keys })
console.log(`sealed ${users} profiles in ${((Date.now() - started) / 1000).toFixed(1)} s`)
await sqlOn(urlOf('bench_pii_sealed'), 'vacuum analyze')

interface Server { name: string, url: string, child: ChildProcess, token: string, ids: string[] }
async function start (name: string, port: number, env: NodeJS.ProcessEnv): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, ...env, ...admin, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '100000000', RATE_LIMIT_USER_MAX: '100000000', AUTH_RATE_LIMIT_MAX: '1000', EMAIL_POLL_INTERVAL: '0', WEBHOOK_POLL_INTERVAL: '0', MAX_EVENT_LOOP_DELAY: '0' },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${url}/health`)).ok) break } catch { if (i > 300) throw new Error(`${name} did not start`) }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const login = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: admin.ADMIN_EMAIL, password: admin.ADMIN_PASSWORD }) })
  const token = ((await login.json()) as { data: { accessToken: string } }).data.accessToken
  const page = await fetch(`${url}/api/v1/users?limit=100`, { headers: { authorization: `Bearer ${token}` } })
  const ids = ((await page.json()) as { data: Array<{ id: string, profile: { phone: string } | null }> }).data.filter(u => u.profile?.phone).map(u => u.id)
  return { name, url, child, token, ids }
}

const servers = [
  await start('clear', 3401, { DATABASE_URL: urlOf('bench_pii_clear') }),
  await start('sealed', 3402, { DATABASE_URL: urlOf('bench_pii_sealed'), PII_ENCRYPTION_KEYS: keys })
]
const [a, b] = await Promise.all(servers.map(s => fetch(`${s.url}/api/v1/users/${s.ids[0]}`, { headers: { authorization: `Bearer ${s.token}` } }).then(r => r.json() as Promise<{ data: { profile: { phone: string, bio: string } } }>)))
if (a.data.profile.phone !== b.data.profile.phone || !b.data.profile.bio) throw new Error('the two servers do not answer alike')

async function load (server: Server, scenario: 'get_user' | 'list_page') {
  let n = 0
  const result = await autocannon({
    url: server.url,
    connections: 16,
    duration: seconds,
    headers: { authorization: `Bearer ${server.token}` },
    requests: [{ method: 'GET', setupRequest: req => ({ ...req, path: scenario === 'get_user' ? `/api/v1/users/${server.ids[n++ % server.ids.length]}` : `/api/v1/users?limit=20&page=${1 + (n++ % 50)}` }) }]
  })
  if (result.non2xx > 0) throw new Error(`${server.name} ${scenario}: ${result.non2xx} non-2xx`)
  return result.requests.average
}

const results: Record<string, Record<string, number[]>> = { get_user: { clear: [], sealed: [] }, list_page: { clear: [], sealed: [] } }
for (const scenario of ['get_user', 'list_page'] as const) for (const s of servers) await load(s, scenario)
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? servers : [...servers].reverse()
  for (const scenario of ['get_user', 'list_page'] as const) {
    for (const s of order) results[scenario][s.name].push(await load(s, scenario))
  }
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
for (const [scenario, by] of Object.entries(results)) {
  console.log(`${scenario}: clear ${by.clear.map(Math.round).join(' ')} | sealed ${by.sealed.map(Math.round).join(' ')} req/s; median sealed/clear = ${(median(by.sealed) / median(by.clear)).toFixed(3)}`)
}
for (const s of servers) s.child.kill('SIGTERM')

// Two instances of the built service behind the repository's own nginx configuration (TLS), on
// one fresh PostgreSQL database and one Redis key prefix, with a real SMTP server: what only a
// cluster can get wrong (issue 14). Run with `npm run test:cluster` (builds first; needs
// PostgreSQL and Redis, by default on 127.0.0.1:5432 and :6379, or the servers that
// DATABASE_URL and REDIS_URL name: the test creates and drops a database of its own there).
// Not part of `npm test` (package.json tap.exclude); .ci/run runs it once.
//
// Clients are told apart by their source address: the whole of 127.0.0.0/8 is loopback, so
// each check binds its own 127.x address and gets its own per-IP budgets. nginx reaches the
// instances from 127.0.0.1, the only address they trust (TRUST_PROXY).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { connect as tlsConnect, type SecureVersion } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import pg from 'pg'
import { SMTPServer } from 'smtp-server'
import t from 'tap'
import { freePort } from '../helper.js'
import { NGINX, nginxCopy, startNginx } from '../nginx.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const exec = promisify(execFile)
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
if (!NGINX) throw new Error('nginx is not installed (apt-get install -y nginx; .ci/run does)')
// The image's CMD, run from the repository root as the image runs it from /app.
const CMD = JSON.parse(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').match(/^CMD (\[.*\])$/m)?.[1] ?? '[]') as string[]
const ENTRY = CMD.find(word => word.endsWith('.cjs')) ?? 'dist/src/start.cjs'
if (!existsSync(path.join(ROOT, ENTRY))) throw new Error(`${ENTRY} is missing: npm run build first (npm run test:cluster does)`)
const MIGRATIONS = readdirSync(path.join(ROOT, 'db/migrations')).filter(f => f.endsWith('.up.sql')).map(f => f.slice(0, -'.up.sql'.length)).sort()

// Small budgets, so the cross-instance counts show within a few requests.
const AUTH_RATE_LIMIT_MAX = 6
const LOGIN_MAX_FAILURES = 3
const EMAIL_POLL_MS = 250
const PASSWORD = 'Correct-Horse-9'
const ADMIN = { email: 'admin@cluster.test', password: 'Cluster-Admin-9' }

// ---- the servers: a fresh database, a Redis prefix, SMTP, two instances, nginx

// Every message the service sends, with the address of the instance that sent it.
interface Mail { to: string[], sender: string, raw: string }
const mails: Mail[] = []
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  onData (stream, session, callback) {
    let raw = ''
    stream.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk }).on('end', () => {
      mails.push({ to: session.envelope.rcptTo.map(r => r.address), sender: session.remoteAddress, raw })
      callback()
    })
  }
})
const smtpPort = await freePort()
await new Promise<void>(resolve => smtp.listen(smtpPort, '127.0.0.1', resolve))

const server = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const redisPrefix = `cluster:${randomUUID()}:`
const dbName = `cluster_${Date.now()}_${process.pid}`
const urlOf = (database: string) => Object.assign(new URL(server), { pathname: `/${database}` }).href
const admin = new pg.Client({ connectionString: urlOf('postgres') })
await admin.connect()
await admin.query(`CREATE DATABASE ${dbName}`)
const db = new pg.Client({ connectionString: urlOf(dbName) })
await db.connect()
const dir = await mkdtemp(path.join(tmpdir(), 'cluster-'))
const children: ChildProcess[] = []
// Whatever way this process ends, no instance or nginx outlives it.
process.once('exit', () => { for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
t.teardown(async () => {
  const running = children.filter(child => child.exitCode === null && child.signalCode === null)
  for (const child of running) child.kill('SIGTERM')
  await Promise.all(running.map(child => child.exitCode !== null || child.signalCode !== null || new Promise(resolve => child.once('exit', resolve))))
  await new Promise(resolve => smtp.close(() => resolve(undefined)))
  await db.end()
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await admin.end()
  const redis = new Redis(redisUrl)
  for await (const keys of redis.scanStream({ match: `${redisPrefix}*`, count: 1000 })) if ((keys as string[]).length) await redis.del(...keys as string[])
  redis.disconnect()
  await rm(dir, { recursive: true, force: true })
})

interface Instance { name: string, url: string, sender: string, child: ChildProcess, lines: string[] }
const jwtSecret = randomBytes(48).toString('base64')
// Both instances must share it, as they share JWT_SECRET: a TOTP secret sealed by one is opened by the other.
const mfaEncryptionKey = randomBytes(32).toString('base64')

function startInstance (name: string, port: number, sender: string): Instance {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: urlOf(dbName),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    JWT_SECRET: jwtSecret,
    MFA_ENCRYPTION_KEY: mfaEncryptionKey,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    EMAIL_TRANSPORT: 'smtp',
    // Each instance sends from its own address, so the SMTP server knows which one sent what.
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}/?localAddress=${sender}&ignoreTLS=true`,
    EMAIL_POLL_INTERVAL: `${EMAIL_POLL_MS}ms`,
    TRUST_PROXY: '127.0.0.1',
    AUTH_RATE_LIMIT_MAX: String(AUTH_RATE_LIMIT_MAX),
    LOGIN_MAX_FAILURES: String(LOGIN_MAX_FAILURES),
    // The load below comes from one client address and one user; the per-IP checks use the auth budget.
    RATE_LIMIT_MAX: '1000000',
    RATE_LIMIT_USER_MAX: '1000000',
    // Two cores shared with nginx, PostgreSQL and the load: no load shedding.
    MAX_EVENT_LOOP_DELAY: '0',
    LOG_LEVEL: 'info'
  }
  // Through env(1): tap adds its loaders to NODE_OPTIONS of the node processes it sees spawned.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...CMD.slice(1)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const lines: string[] = []
  let rest = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n')
    rest = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { lines.push(...chunk.split('\n').filter(Boolean).map(msg => JSON.stringify({ level: 60, stderr: msg }))) })
  return { name, url: `http://127.0.0.1:${port}`, sender, child, lines }
}

const logsOf = (instance: Instance) => instance.lines.flatMap(line => {
  try { return [JSON.parse(line) as { level: number, msg?: string, [key: string]: unknown }] } catch { return [{ level: 60, msg: line }] }
})

const instances = [startInstance('api-1', await freePort(), '127.0.9.1'), startInstance('api-2', await freePort(), '127.0.9.2')]
const [A, B] = instances
const ports = { http: await freePort(), https: await freePort() }
children.push(await startNginx(await nginxCopy(dir, ports, instances.map(i => new URL(i.url).host)), ports.https))
const EDGE = `https://127.0.0.1:${ports.https}`

// ---- HTTP

interface Reply { status: number, headers: IncomingHttpHeaders, body: any }
interface Call { body?: unknown, token?: string, from?: string, headers?: Record<string, string>, agent?: HttpAgent }

/** One request to an instance (http) or to nginx (https), from the client address `from`. */
function call (base: string, method: string, url: string, { body, token, from, headers, agent }: Call = {}): Promise<Reply> {
  const target = new URL(url, base)
  const https = target.protocol === 'https:'
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const options: RequestOptions & { rejectUnauthorized?: boolean } = {
    method,
    host: target.hostname,
    port: target.port,
    path: target.pathname + target.search,
    localAddress: from,
    agent: agent ?? false,
    rejectUnauthorized: false,
    headers: {
      ...(payload ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers
    }
  }
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(options, res => {
      let text = ''
      res.setEncoding('utf8').on('data', chunk => { text += chunk }).on('end', () => {
        const json = String(res.headers['content-type']).startsWith('application/json')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: json && text ? JSON.parse(text) : text })
      }).on('error', reject)
    })
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${url}: no answer in 20 s`)))
    req.on('error', reject).end(payload)
  })
}

const codeOf = (reply: Reply) => reply.body?.error?.code as string | undefined
let nextUser = 0
const newEmail = (tag: string) => `${tag}-${++nextUser}-${randomUUID().slice(0, 8)}@cluster.test`

async function register (base: string, email: string, from: string) {
  const res = await call(base, 'POST', '/api/v1/auth/register', { from, body: { email, password: PASSWORD, firstName: 'Cluster', lastName: 'User' } })
  if (res.status !== 201) throw new Error(`register ${email}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.data as { id: string, email: string }
}

async function login (base: string, email: string, password: string, from: string) {
  const res = await call(base, 'POST', '/api/v1/auth/login', { from, body: { email, password } })
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.data as { accessToken: string, refreshToken: string, user: { id: string } }
}

/** Polls until the token is refused on that instance; resolves to how long that took (ms). */
async function refusedAfter (base: string, token: string, from: string, since: number) {
  for (;;) {
    const res = await call(base, 'GET', '/api/v1/auth/me', { token, from })
    if (res.status === 401) return Date.now() - since
    if (res.status !== 200) throw new Error(`GET /auth/me: ${res.status} ${JSON.stringify(res.body)}`)
    if (Date.now() - since > 5000) return Infinity
    await sleep(20)
  }
}

// ---- the checks

t.test('1. both instances start together on an empty database; the migrations run once', async t => {
  await Promise.all(instances.map(async instance => {
    for (const started = Date.now(); ;) {
      if (instance.child.exitCode !== null) throw new Error(`${instance.name} exited (${instance.child.exitCode}):\n${instance.lines.join('\n')}`)
      const ready = await call(instance.url, 'GET', '/health/ready', { from: '127.0.1.1' }).catch(() => undefined)
      if (ready?.status === 200) return
      if (Date.now() - started > 60_000) throw new Error(`${instance.name} not ready in 60 s:\n${instance.lines.join('\n')}`)
      await sleep(100)
    }
  }))
  for (const instance of instances) {
    const errors = logsOf(instance).filter(entry => entry.level >= 50)
    t.same(errors, [], `${instance.name}: no error logged while starting`)
  }
  const applied = instances.flatMap(instance => logsOf(instance).filter(e => e.msg === 'migration applied').map(e => e.migration))
  t.same([...applied].sort(), MIGRATIONS, 'each migration applied by exactly one of the instances')
  const { rows: recorded } = await db.query('SELECT name FROM kysely_migration ORDER BY name')
  t.same(recorded.map(r => r.name), MIGRATIONS, 'each recorded once')
  const { rows: admins } = await db.query('SELECT u.email FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id WHERE r.name = \'admin\'')
  t.same(admins.map(r => r.email), [ADMIN.email], 'one bootstrap admin, though both were told to create it')

  // The schema equals that of a database migrated by the migrate CLI alone.
  const reference = `${dbName}_ref`
  await admin.query(`CREATE DATABASE ${reference}`)
  t.teardown(() => admin.query(`DROP DATABASE IF EXISTS ${reference} WITH (FORCE)`))
  await exec(process.execPath, [path.join(ROOT, 'dist/src/cli/migrate.js'), 'up'], { cwd: ROOT, env: { PATH: process.env.PATH, DATABASE_URL: urlOf(reference), LOG_LEVEL: 'warn', NODE_OPTIONS: '' } })
  const ref = new pg.Client({ connectionString: urlOf(reference) })
  await ref.connect()
  try {
    // Less the job queues' partitions, which the instances add when they start (pg-boss's createQueue).
    const partition = /pgboss\.j[0-9a-f]{56}\b/
    const [got, want] = await Promise.all([schemaOf(db), schemaOf(ref)])
    t.ok(want.length > 50, `the reference schema has ${want.length} objects`)
    t.same(got.filter(d => !partition.test(d)), want, 'the schema is the one the migrations make')
    const { rows: queues } = await db.query('SELECT name, partition_name FROM pgboss.queue')
    const names = queues.map(q => q.name)
    t.ok(names.includes('email.send'), `the email queue exists (${names.join(', ')})`)
    t.equal(new Set(names).size, names.length, 'each job queue made once, though both instances made them')
    t.ok(got.some(d => d.startsWith(`column pgboss.${queues[0]?.partition_name}.`)), 'with its partition')
  } finally { await ref.end() }
})

/** Tables, columns, constraints, indexes, triggers, functions and the seeded roles, as sorted text. */
async function schemaOf (client: pg.Client): Promise<string[]> {
  const { rows } = await client.query(`
    SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS d
      FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'constraint ' || n.nspname || '.' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(c.oid)
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'trigger ' || event_object_schema || '.' || event_object_table || ' ' || trigger_name || ' ' || action_timing || ' ' || event_manipulation || ' ' || action_statement
      FROM information_schema.triggers
    UNION ALL SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'role ' || name || ' ' || permissions::text FROM roles
    UNION ALL SELECT 'pgboss ' || version FROM pgboss.version
  `)
  return rows.map(r => r.d as string).sort()
}

t.test('2. a rate limit and an account lockout are counted across both instances', async t => {
  // Requests alternate between the instances, from one client address.
  const from = '127.0.2.1'
  for (let i = 1; i <= AUTH_RATE_LIMIT_MAX + 2; i++) {
    const instance = instances[i % 2]
    const res = await call(instance.url, 'POST', '/api/v1/auth/password/forgot', { from, body: { email: 'nobody@cluster.test' } })
    if (i <= AUTH_RATE_LIMIT_MAX) {
      t.equal(res.status, 202, `request ${i} (${instance.name}) is within the budget`)
      t.equal(res.headers['x-ratelimit-remaining'], String(AUTH_RATE_LIMIT_MAX - i), `request ${i}: the remaining budget counts both instances' requests`)
    } else {
      t.equal(res.status, 429, `request ${i} (${instance.name}) is over the shared budget of ${AUTH_RATE_LIMIT_MAX}`)
      t.equal(codeOf(res), 'RATE_LIMITED')
      t.ok(Number(res.headers['retry-after']) > 0, 'with Retry-After')
    }
  }

  const email = newEmail('locked')
  await register(A.url, email, '127.0.2.2')
  for (let i = 1; i <= LOGIN_MAX_FAILURES; i++) {
    const instance = instances[i % 2]
    const res = await call(instance.url, 'POST', '/api/v1/auth/login', { from: '127.0.2.3', body: { email, password: 'Wrong-Password-1' } })
    t.equal(codeOf(res), 'INVALID_CREDENTIALS', `failure ${i} (${instance.name})`)
  }
  for (const instance of instances) {
    const res = await call(instance.url, 'POST', '/api/v1/auth/login', { from: '127.0.2.4', body: { email, password: PASSWORD } })
    t.equal(res.status, 429, `${instance.name}: the account is locked after ${LOGIN_MAX_FAILURES} failures on two instances, even with the right password`)
    t.equal(codeOf(res), 'RATE_LIMITED')
  }
})

t.test('3. a refresh token spent on one instance is TOKEN_REUSED on the other, and its login is revoked', async t => {
  const from = '127.0.3.1'
  const email = newEmail('refresh')
  await register(A.url, email, from)
  const first = await login(A.url, email, PASSWORD, from)
  const rotated = await call(A.url, 'POST', '/api/v1/auth/refresh', { from, body: { refreshToken: first.refreshToken } })
  t.equal(rotated.status, 200, 'rotated on api-1')
  const second = rotated.body.data as { accessToken: string, refreshToken: string }
  t.equal((await call(B.url, 'GET', '/api/v1/auth/me', { from, token: second.accessToken })).status, 200, 'the new access token works on api-2')

  const replay = await call(B.url, 'POST', '/api/v1/auth/refresh', { from, body: { refreshToken: first.refreshToken } })
  t.equal(replay.status, 401, 'the spent token replayed on api-2 is refused')
  t.equal(codeOf(replay), 'TOKEN_REUSED')
  const next = await call(A.url, 'POST', '/api/v1/auth/refresh', { from, body: { refreshToken: second.refreshToken } })
  t.equal(next.status, 401, 'the family\'s current refresh token is revoked too (on api-1)')
  t.ok(await refusedAfter(B.url, second.accessToken, from, Date.now()) < 1000, 'and its access token is refused on api-2 within a second')
  t.ok(await refusedAfter(A.url, second.accessToken, from, Date.now()) < 1000, 'and on api-1')
})

t.test('4. logout-all, suspension and deletion on one instance end the access token on the other within a second', async t => {
  const from = '127.0.4.1'
  const root = await login(A.url, ADMIN.email, ADMIN.password, from)
  const cases: Array<[string, (user: { id: string, token: string }) => Promise<Reply>]> = [
    ['logout-all', user => call(A.url, 'POST', '/api/v1/auth/logout-all', { from, token: user.token })],
    ['suspension', user => call(A.url, 'PATCH', `/api/v1/users/${user.id}`, { from, token: root.accessToken, body: { status: 'suspended' } })],
    ['deletion', user => call(A.url, 'DELETE', `/api/v1/users/${user.id}`, { from, token: root.accessToken })]
  ]
  for (const [what, act] of cases) {
    const email = newEmail(what)
    await register(A.url, email, from)
    const pair = await login(B.url, email, PASSWORD, from)
    const user = { id: pair.user.id, token: pair.accessToken }
    // Twice on api-2, so the login's state is in its cache.
    for (let i = 0; i < 2; i++) t.equal((await call(B.url, 'GET', '/api/v1/auth/me', { from, token: user.token })).status, 200, `${what}: the token works on api-2`)
    const res = await act(user)
    const done = Date.now()
    t.ok(res.status >= 200 && res.status < 300, `${what} on api-1: ${res.status}`)
    const ms = await refusedAfter(B.url, user.token, from, done)
    t.ok(ms <= 1000, `${what}: the access token is refused on api-2 ${ms} ms later`)
  }
})

t.test('5. each email is sent exactly once, by the two instances\' job runners together', async t => {
  const emails = Array.from({ length: 50 }, () => newEmail('mail'))
  // Through nginx, ten at a time, each from its own address (the register budget is per IP).
  for (let i = 0; i < emails.length; i += 10) {
    await Promise.all(emails.slice(i, i + 10).map((email, j) => register(EDGE, email, `127.0.5.${i + j + 1}`)))
  }
  const to = (email: string) => mails.filter(m => m.to.includes(email))
  for (const started = Date.now(); emails.some(e => to(e).length === 0) && Date.now() - started < 30_000;) await sleep(100)
  // A few more polls of both runners, for a second copy to show up if there were one.
  await sleep(4 * EMAIL_POLL_MS + 500)
  const counts = emails.map(email => to(email).length)
  t.equal(counts.filter(n => n === 1).length, 50, '50 registrations: 50 verification emails, one to each address')
  t.same(counts.filter(n => n !== 1), [], 'none missing, none twice')
  t.ok(emails.every(email => to(email).every(m => /^Subject: Verify your email address\r?$/m.test(m.raw))), 'each is the verification email')
  const everyRecipient = mails.flatMap(m => m.to)
  t.equal(new Set(everyRecipient).size, everyRecipient.length, `no address got two of all ${mails.length} emails sent in this run`)
  const { rows: [outbox] } = await db.query('SELECT count(*)::int AS total, count(sent_at)::int AS sent FROM email_outbox')
  t.same(outbox, { total: mails.length, sent: mails.length }, 'every outbox row sent and recorded once')
  const bySender = instances.map(i => mails.filter(m => m.sender === i.sender).length)
  t.equal(bySender[0] + bySender[1], mails.length, 'every email came from one of the two instances')
  t.ok(bySender[0] > 0 && bySender[1] > 0, `both instances' runners delivered: api-1 ${bySender[0]}, api-2 ${bySender[1]}`)
})

t.test('7. the client\'s address reaches the per-IP limits through nginx, and X-Forwarded-For cannot fake it', async t => {
  const forgot = (base: string, from: string, headers?: Record<string, string>) =>
    call(base, 'POST', '/api/v1/auth/password/forgot', { from, headers, body: { email: 'nobody@cluster.test' } })
  for (let i = 1; i <= AUTH_RATE_LIMIT_MAX; i++) t.equal((await forgot(EDGE, '127.0.7.1')).status, 202, `client 127.0.7.1 through nginx: request ${i}`)
  t.equal((await forgot(EDGE, '127.0.7.1')).status, 429, 'its budget is spent, across the instances')
  t.equal((await forgot(EDGE, '127.0.7.1', { 'x-forwarded-for': '203.0.113.50' })).status, 429, 'a client-sent X-Forwarded-For does not give it a fresh budget')
  t.equal((await forgot(A.url, '127.0.7.1', { 'x-forwarded-for': '203.0.113.51' })).status, 429, 'nor does it straight to an instance (not from the proxy: not believed)')
  const other = await forgot(EDGE, '127.0.7.2')
  t.equal(other.status, 202, 'another client through the same nginx has its own budget')
  t.equal(other.headers['x-ratelimit-remaining'], String(AUTH_RATE_LIMIT_MAX - 1), 'a fresh one')
  t.equal((await forgot(B.url, '127.0.7.3', { 'x-forwarded-for': '127.0.7.1' })).status, 202, 'a direct client cannot borrow another\'s address either')

  const email = newEmail('ip')
  await register(EDGE, email, '127.0.7.4')
  const pair = await login(EDGE, email, PASSWORD, '127.0.7.5')
  const sessions = await call(EDGE, 'GET', '/api/v1/auth/sessions', { from: '127.0.7.6', token: pair.accessToken, headers: { 'x-forwarded-for': '198.51.100.7' } })
  t.same(sessions.body.data.map((s: { ip: string }) => s.ip), ['127.0.7.5'], 'the login records the client\'s address, not nginx\'s')
})

t.test('8. TLS: HTTP redirects to HTTPS, HSTS, nothing older than TLS 1.2', async t => {
  const plain = await call(`http://127.0.0.1:${ports.http}`, 'GET', '/api/v1/users?limit=1', { from: '127.0.8.1' })
  t.equal(plain.status, 301, 'HTTP is redirected')
  t.equal(plain.headers.location, 'https://127.0.0.1/api/v1/users?limit=1', 'to the same URL over HTTPS')
  for (const url of ['/health', '/api/v1/nowhere']) {
    const res = await call(EDGE, 'GET', url, { from: '127.0.8.1' })
    t.equal(res.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains', `GET ${url} (${res.status}): one HSTS header`)
  }
  const handshake = (version: SecureVersion) => new Promise<string>(resolve => {
    // SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal must come from nginx.
    const socket = tlsConnect({ host: '127.0.0.1', port: ports.https, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false })
    socket.on('secureConnect', () => { resolve(socket.getProtocol() ?? ''); socket.destroy() })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
  t.equal(await handshake('TLSv1.2'), 'TLSv1.2', 'TLS 1.2 accepted')
  t.equal(await handshake('TLSv1.3'), 'TLSv1.3', 'TLS 1.3 accepted')
  t.equal(await handshake('TLSv1.1'), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'TLS 1.1 refused by the server (protocol_version alert)')
})

// Last: it kills api-2.
t.test('6. killing one instance under load loses at most the requests in flight on it', async t => {
  const from = '127.0.6.1'
  const email = newEmail('load')
  await register(EDGE, email, from)
  const pair = await login(EDGE, email, PASSWORD, from)
  const CONCURRENCY = 16
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: CONCURRENCY })
  const counts = { ok: 0, failed: 0, inFlight: 0, inFlightAtKill: 0, sentLate: 0, failedLate: 0 }
  const failures = new Map<string, number>()
  let killedAt = 0
  const load = { stopped: false }
  // Reads, which nginx may pass on to the other instance, and POSTs, which it never sends twice
  // (a logout of an unknown refresh token: 204, a database read, no contention).
  const worker = async (n: number) => {
    for (let i = 0; !load.stopped; i++) {
      const post = (n + i) % 2 === 0
      // Sent a second after the kill: nginx has long seen api-2 go.
      const late = killedAt > 0 && Date.now() - killedAt > 1000
      counts.inFlight++
      const res = await (post
        ? call(EDGE, 'POST', '/api/v1/auth/logout', { from, agent, body: { refreshToken: randomBytes(32).toString('base64url') } })
        : call(EDGE, 'GET', '/api/v1/auth/me', { from, agent, token: pair.accessToken })
      ).catch((err: Error) => ({ status: 0, headers: {}, body: err.message }) as Reply)
      counts.inFlight--
      if (late) counts.sentLate++
      if (res.status >= 200 && res.status < 300) {
        counts.ok++
        continue
      }
      counts.failed++
      if (late) counts.failedLate++
      const key = `${post ? 'POST' : 'GET'} ${res.status}${killedAt ? ` ${Date.now() - killedAt} ms after the kill` : ' before the kill'}`
      failures.set(key, (failures.get(key) ?? 0) + 1)
    }
  }
  const linesOfB = B.lines.length
  const running = Array.from({ length: CONCURRENCY }, (_v, n) => worker(n))
  await sleep(1500)
  const before = counts.ok
  const servedByB = B.lines.length - linesOfB
  B.child.kill('SIGKILL')
  killedAt = Date.now()
  counts.inFlightAtKill = counts.inFlight
  await sleep(2500)
  load.stopped = true
  await Promise.all(running)
  agent.destroy()
  t.comment(`answered 2xx: ${counts.ok} (${before} before the kill); failed: ${counts.failed} ${JSON.stringify(Object.fromEntries(failures))}; in flight at the kill: ${counts.inFlightAtKill}`)
  t.ok(before > CONCURRENCY, `the load ran before the kill (${before} answered)`)
  t.ok(servedByB > 0, `api-2 was serving it (${servedByB} lines logged)`)
  // Each of nginx's connections to api-2 can fail one request: the one in flight on it, or a POST
  // written to it as it closed (nginx never resends a POST it has sent). The client's
  // concurrency bounds those connections.
  t.ok(counts.failed <= CONCURRENCY, `at most the requests in flight on api-2 failed: ${counts.failed}, concurrency ${CONCURRENCY}`)
  t.ok(counts.sentLate > CONCURRENCY, `api-1 alone answers the rest (${counts.sentLate} sent from a second after the kill)`)
  t.equal(counts.failedLate, 0, 'none of those failed')
  t.equal(B.child.signalCode, 'SIGKILL', 'api-2 was killed')
  t.equal(A.child.exitCode, null, 'api-1 still runs')
})

// npm run bench: the service against a lean floor, the seed's stack as peer, and the same-work
// floor as a diagnostic, in one interleaved run (see bench/README.md).
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon, { type Options, type Result } from 'autocannon'
import { SEED_PASSWORD, createBenchDatabase, seedEmail, type BenchDatabase } from './lib/database.js'
import { BASELINE_ADMIN_EMAIL, createLeanDatabase, createPeerDatabase, ensurePeerInstalled, peerPasswordHash, PEER_DIR, type SeededDatabase } from './lib/baselines.js'
import { request } from './lib/http.js'
import { freePort, postgresCpu, postgresCpuSince, sampleRss, startServer, type ServerProcess } from './lib/servers.js'
import { GROWTH_SCENARIOS, scenarios, type BenchState, type Scenario, type ServerName, type Target } from './lib/scenarios.js'
import { createPasswordHasher } from '../src/lib/password.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const env = process.env
const quick = env.BENCH_QUICK === '1'
const settings = {
  serverUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432',
  redisUrl: env.REDIS_URL,
  users: Number(env.BENCH_USERS ?? 100_000),
  seconds: Number(env.BENCH_DURATION ?? (quick ? 1 : 3)),
  warmupSeconds: Number(env.BENCH_WARMUP ?? (quick ? 1 : 2)),
  // The paced runs (half rate, login storm) give one p99 each: longer runs make it steadier.
  pacedSeconds: Number(env.BENCH_PACED_DURATION ?? (quick ? 1 : 10)),
  rounds: Number(env.BENCH_ROUNDS ?? (quick ? 1 : 3)),
  growthSeconds: Number(env.BENCH_GROWTH_DURATION ?? (quick ? 1 : 2)),
  growthRounds: Number(env.BENCH_GROWTH_ROUNDS ?? (quick ? 1 : 2)),
  million: env.BENCH_SKIP_1M !== '1' && !quick,
  only: env.BENCH_SCENARIOS?.split(',').map(s => s.trim()).filter(Boolean),
  servers: (env.BENCH_SERVERS?.split(',').map(s => s.trim()).filter(Boolean) ?? ['service', 'lean', 'peer', 'floor']) as ServerName[],
  cpuProfile: env.BENCH_CPU_PROF === '1',
  build: env.BENCH_SKIP_BUILD !== '1',
  /** Extra node flags for the service only, for experiments (e.g. "--max-semi-space-size=4"). */
  serviceNodeFlags: env.BENCH_SERVICE_NODE_FLAGS?.split(' ').filter(Boolean) ?? [],
  /**
   * Another build of the service (its dist/src/start.cjs) run in the same-work floor's place, with
   * the service's flags: the service/floor ratio is then this build over that one (A/B), or noise alone (A/A).
   */
  baselineEntry: env.BENCH_BASELINE_ENTRY,
  /** Environment of the other build only (`NAME=value,...`), e.g. LOG_LEVEL=info for an A/A run that prices request logging. */
  baselineEnv: Object.fromEntries((env.BENCH_BASELINE_ENV ?? '').split(',').filter(Boolean).map(pair => pair.split(/=(.*)/s).slice(0, 2)))
}
if (!settings.servers.includes('service')) settings.servers.unshift('service')

/**
 * The service runs as `npm start` runs it: the node flags and entry of package.json's start
 * script (heap limits included), so the bench measures what production starts.
 */
function startCommand (): { flags: string[], entry: string } {
  const script = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.start as string
  const [node, ...args] = script.split(/\s+/)
  if (node !== 'node' || !args.at(-1)?.endsWith('.cjs')) throw new Error(`unexpected start script: ${script}`)
  return { flags: args.slice(0, -1), entry: path.join(ROOT, args.at(-1)!) }
}

/** Connections for the paced get_user runs (half rate, login storm). */
const PACED_CONNECTIONS = 8
/** The servers the growth steps compare (the same-work floor only in the main run). */
const GROWTH_SERVERS: ServerName[] = ['service', 'lean', 'peer']

/** BENCH_SCENARIOS names what to run: scenario names, and growth, half_rate, login_storm. */
/** Migrates a database with another build's own migrator (dist/src/cli/migrate.js beside its entry). */
const migrateWith = (entry: string) => async (url: string) => {
  execFileSync(process.execPath, [path.join(path.dirname(entry), 'cli', 'migrate.js'), 'up'], { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] })
}

const wants = (part: string) => !settings.only || settings.only.includes(part)

const stamp = new Date().toISOString().replace(/[:.]/g, '-')
const resultsDir = path.join(ROOT, 'bench', 'results')
mkdirSync(resultsDir, { recursive: true })

// ---- one measured run and its summary ----------------------------------------------------
interface Run {
  server: string
  /** Answers per second that were 2xx (non-2xx answers are counted apart and fail the run). */
  rps: number
  p50: number
  p90: number
  p99: number
  max: number
  requests: number
  non2xx: number
  errors: number
  statusCodes: Record<string, number>
  rssPeakMiB: number
  /** CPU time per answered request: the server process, and its database's PostgreSQL backends (µs). */
  cpuUsPerRequest: number
  sysCpuUsPerRequest: number
  pgCpuUsPerRequest: number
}

interface Entry { target: Target, server: ServerProcess }

async function measure ({ target, server }: Entry, scenario: Scenario, state: BenchState, seconds: number, extra: Partial<Options> = {}): Promise<Run> {
  const { path: requestPath, ...options } = { ...await scenario.prepare(target, state), ...extra }
  const rss = sampleRss(server)
  const [cpuBefore, sysBefore, pgBefore] = [server.cpuMs(), server.sysCpuMs(), postgresCpu(target.database)]
  const result: Result = await autocannon({ connections: scenario.connections, duration: seconds, timeout: 20, ...options, url: `${target.url}${requestPath ?? '/'}` })
  const answered = Math.max(1, result.requests.total)
  return {
    server: target.name,
    rps: (result.requests.total - result.non2xx) / result.duration,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
    rssPeakMiB: rss.stop(),
    cpuUsPerRequest: 1000 * (server.cpuMs() - cpuBefore) / answered,
    sysCpuUsPerRequest: 1000 * (server.sysCpuMs() - sysBefore) / answered,
    pgCpuUsPerRequest: 1000 * postgresCpuSince(pgBefore, target.database) / answered
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

interface Summary { rps: number, rpsMin: number, rpsMax: number, p50: number, p99: number, non2xx: number, errors: number, statusCodes: Record<string, number>, rssPeakMiB: number, cpuUsPerRequest: number, pgCpuUsPerRequest: number }
function summarise (runs: Run[], warmups: Run[]): Summary {
  const all = [...runs, ...warmups]
  const statusCodes: Record<string, number> = {}
  for (const r of all) for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n
  return {
    rps: mean(runs.map(r => r.rps)),
    rpsMin: Math.min(...runs.map(r => r.rps)),
    rpsMax: Math.max(...runs.map(r => r.rps)),
    p50: median(runs.map(r => r.p50)),
    p99: median(runs.map(r => r.p99)),
    // Failures count in the warm-up too: the bench must see none at all.
    non2xx: all.reduce((n, r) => n + r.non2xx, 0),
    errors: all.reduce((n, r) => n + r.errors, 0),
    statusCodes,
    rssPeakMiB: Math.max(...all.map(r => r.rssPeakMiB)),
    cpuUsPerRequest: median(runs.map(r => r.cpuUsPerRequest)),
    pgCpuUsPerRequest: median(runs.map(r => r.pgCpuUsPerRequest))
  }
}

// ---- printing ----------------------------------------------------------------------------
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-').padStart(9)
function header () {
  console.log(`${'scenario'.padEnd(26)}${'server'.padEnd(9)}${'2xx/s'.padStart(9)}${'(min'.padStart(9)}${'max)'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'non-2xx'.padStart(9)}${'errors'.padStart(9)}${'RSS MiB'.padStart(9)}${'CPU µs/req'.padStart(11)}${'PG µs/req'.padStart(10)}`)
}
function printSummary (name: string, server: string, s: Summary) {
  const codes = Object.entries(s.statusCodes).filter(([code]) => !code.startsWith('2')).map(([code, n]) => `${n} x ${code}`).join(', ')
  const flag = s.non2xx + s.errors > 0 ? `  <-- FAILURES${codes ? ` (${codes})` : ''}` : ''
  console.log(`${name.padEnd(26)}${server.padEnd(9)}${fmt(s.rps)}${fmt(s.rpsMin)}${fmt(s.rpsMax)}${fmt(s.p50, 1)}${fmt(s.p99, 1)}${fmt(s.non2xx)}${fmt(s.errors)}${fmt(s.rssPeakMiB, 1)}${fmt(s.cpuUsPerRequest).padStart(11)}${fmt(s.pgCpuUsPerRequest).padStart(10)}${flag}`)
}

// ---- the comparison: warm-up, then rounds with every server in turn, the order rotating ----
interface Comparison {
  scenario: string
  connections: number
  seconds: number
  /** service over each other server (2xx answers per second). */
  ratios: Partial<Record<ServerName, number>>
  servers: Partial<Record<ServerName, Summary>>
  runs: Run[]
}

async function compare (label: string, scenario: Scenario, all: Entry[], state: BenchState, rounds: number, seconds: number, warmupSeconds: number): Promise<Comparison> {
  const entries = all.filter(e => !scenario.skip?.includes(e.target.name))
  const warmups: Record<string, Run[]> = {}
  const runs: Record<string, Run[]> = {}
  for (const e of entries) {
    warmups[e.target.name] = [await measure(e, scenario, state, warmupSeconds)]
    runs[e.target.name] = []
  }
  // Each round every server once, the order rotating and reversing from round to round, so that
  // a shared machine speeding up or slowing down during a scenario hits every server alike.
  for (let round = 0; round < rounds; round++) {
    const shift = Math.floor(round / 2) % entries.length
    const rotated = [...entries.slice(shift), ...entries.slice(0, shift)]
    for (const e of round % 2 === 0 ? rotated : rotated.reverse()) runs[e.target.name].push(await measure(e, scenario, state, seconds))
  }
  const servers: Partial<Record<ServerName, Summary>> = {}
  for (const e of entries) {
    servers[e.target.name] = summarise(runs[e.target.name], warmups[e.target.name])
    printSummary(label, e.target.name, servers[e.target.name]!)
  }
  const ratios: Partial<Record<ServerName, number>> = {}
  for (const e of entries) if (e.target.name !== 'service') ratios[e.target.name] = servers.service!.rps / servers[e.target.name]!.rps
  console.log(`ratio ${label} ${Object.entries(ratios).map(([name, r]) => `service/${name}=${r.toFixed(2)}`).join(' ')}`)
  return { scenario: label, connections: scenario.connections, seconds, ratios, servers, runs: Object.values(runs).flat() }
}

// ---- setup helpers -----------------------------------------------------------------------
async function login (url: string, email: string, password: string) {
  const res = await request(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) })
  if (res.status !== 200) throw new Error(`admin login on ${url} failed: ${res.status} ${res.text}`)
  return (JSON.parse(res.text) as { data: { accessToken: string } }).data.accessToken
}

/** Pages through the list (limit 100) and keeps each nextCursor: valid keyset positions spread over the first rows. */
async function collectCursors (target: Target, pages = 100) {
  let cursor: string | null = null
  for (let page = 0; page < pages; page++) {
    const qs: string = cursor ? `&cursor=${cursor}` : ''
    const res = await request(`${target.url}/api/v1/users?limit=100${qs}`, { headers: { authorization: `Bearer ${target.adminToken}` } })
    if (res.status !== 200) throw new Error(`listing users on ${target.name} failed: ${res.status} ${res.text}`)
    const body = JSON.parse(res.text) as { pagination: { nextCursor: string | null } }
    cursor = body.pagination.nextCursor
    if (!cursor) break
    target.cursors.push(cursor)
  }
}

/** A value's shape: types and keys (sorted), not the values (tokens, ids and times differ between servers). */
function shape (value: unknown): unknown {
  if (Array.isArray(value)) return value.slice(0, 1).map(shape)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shape(v)]))
  return value === null ? null : typeof value
}

const VOLATILE_HEADERS = new Set(['date', 'x-request-id', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'content-length', 'location', 'etag'])

const call = (t: Target, method: string, url: string, headers: Record<string, string>, body?: unknown) =>
  request(`${t.url}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
const json = { 'content-type': 'application/json' }

/**
 * The same-work floor must serve the same answers: the same JSON for a user and a list page, the
 * same shape (keys and types) for create, login and refresh, and the same headers.
 */
async function checkFloorParity (service: Target, floor: Target) {
  const problems: string[] = []
  const id = service.userIds[0]
  const compareHeaders = (what: string, a: Record<string, string>, b: Record<string, string>) => {
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (VOLATILE_HEADERS.has(name) || a[name] === b[name]) continue
      problems.push(`floor ${what}: header ${name} is ${JSON.stringify(a[name])} on the service, ${JSON.stringify(b[name])} on the floor`)
    }
  }
  for (const url of [`/api/v1/users/${id}`, '/api/v1/users?limit=3']) {
    const [a, b] = await Promise.all([service, floor].map(t => call(t, 'GET', url, { authorization: `Bearer ${t.adminToken}` })))
    if (a.status !== b.status || a.text !== b.text) problems.push(`floor GET ${url}: service ${a.status} ${a.text.slice(0, 200)} / floor ${b.status} ${b.text.slice(0, 200)}`)
    compareHeaders(`GET ${url}`, a.headers, b.headers)
  }
  problems.push(...await checkWrites(service, floor, compareHeaders))
  return problems
}

/** Create, login and refresh on both: same status and shape of answer (and headers, when asked). */
async function checkWrites (service: Target, other: Target, compareHeaders?: (what: string, a: Record<string, string>, b: Record<string, string>) => void) {
  const problems: string[] = []
  const writes: Array<[string, string, (t: Target) => Record<string, string>, (t: Target, previous?: string) => unknown]> = [
    ['POST', '/api/v1/users', t => ({ ...json, authorization: `Bearer ${t.adminToken}` }), t => ({ email: `parity-${t.name}-${Date.now()}@example.test`, password: SEED_PASSWORD, firstName: 'Parity', lastName: 'Check' })],
    ['POST', '/api/v1/auth/login', () => json, () => ({ email: seedEmail(2), password: SEED_PASSWORD })],
    ['POST', '/api/v1/auth/refresh', () => json, (_t, previous) => ({ refreshToken: previous })]
  ]
  const previous: Record<string, string | undefined> = {}
  for (const [method, url, headers, body] of writes) {
    const [a, b] = await Promise.all([service, other].map(t => call(t, method, url, headers(t), body(t, previous[t.name]))))
    if (a.status !== b.status || JSON.stringify(shape(JSON.parse(a.text))) !== JSON.stringify(shape(JSON.parse(b.text)))) {
      problems.push(`${other.name} ${method} ${url}: service ${a.status} ${a.text.slice(0, 200)} / ${other.name} ${b.status} ${b.text.slice(0, 200)}`)
    }
    compareHeaders?.(`${method} ${url}`, a.headers, b.headers)
    for (const [t, r] of [[service, a], [other, b]] as const) previous[t.name] = (JSON.parse(r.text) as { data?: { refreshToken?: string } }).data?.refreshToken
  }
  return problems
}

/**
 * The lean floor and the peer have their own data and tokens: they must answer the benchmarked
 * requests with the same status and the same JSON shape as the service (envelope, user, pagination,
 * token pair, the error envelope of a malformed id), and the same user for the same seeded email.
 */
async function checkBaselineParity (service: Target, other: Target) {
  const problems: string[] = []
  const reads: Array<[string, (t: Target) => string]> = [
    ['GET user', t => `/api/v1/users/${t.userIds[0]}`],
    ['GET page', () => '/api/v1/users?limit=3'],
    ['GET cursor', t => `/api/v1/users?limit=3&cursor=${t.cursors[0]}`],
    ['GET bad id', () => '/api/v1/users/not-a-uuid']
  ]
  for (const [what, url] of reads) {
    const [a, b] = await Promise.all([service, other].map(t => call(t, 'GET', url(t), { authorization: `Bearer ${t.adminToken}` })))
    if (a.status !== b.status || JSON.stringify(shape(JSON.parse(a.text))) !== JSON.stringify(shape(JSON.parse(b.text)))) {
      problems.push(`${other.name} ${what}: service ${a.status} ${a.text.slice(0, 300)} / ${other.name} ${b.status} ${b.text.slice(0, 300)}`)
    }
  }
  // The first page holds the same seeded users on every server (same emails, names and times;
  // logins and patches of the parity checks change lastLoginAt and updatedAt).
  const [a, b] = await Promise.all([service, other].map(t => call(t, 'GET', '/api/v1/users?limit=3', { authorization: `Bearer ${t.adminToken}` })))
  const strip = (text: string) => JSON.stringify((JSON.parse(text) as { data: Array<Record<string, unknown>> }).data.map(({ id: _id, lastLoginAt: _login, updatedAt: _updated, ...rest }) => rest))
  if (a.status === 200 && b.status === 200 && strip(a.text) !== strip(b.text)) problems.push(`${other.name} first page differs: ${strip(a.text).slice(0, 300)} / ${strip(b.text).slice(0, 300)}`)
  const [pa, pb] = await Promise.all([service, other].map(t => call(t, 'PATCH', `/api/v1/users/${t.userIds[1]}`, { ...json, authorization: `Bearer ${t.adminToken}` }, { firstName: 'Parity' })))
  if (pa.status !== pb.status || JSON.stringify(shape(JSON.parse(pa.text))) !== JSON.stringify(shape(JSON.parse(pb.text)))) {
    problems.push(`${other.name} PATCH: service ${pa.status} ${pa.text.slice(0, 300)} / ${other.name} ${pb.status} ${pb.text.slice(0, 300)}`)
  }
  problems.push(...await checkWrites(service, other))
  return problems
}

/** The V8 heap and external memory as prom-client's default metrics report them (MiB; NaN where a server has no /metrics). */
async function heapOf (url: string) {
  const text = await request(`${url}/metrics`).then(r => r.status === 200 ? r.text : '', () => '')
  const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20
  return { heapTotalMiB: gauge('nodejs_heap_size_total_bytes'), heapUsedMiB: gauge('nodejs_heap_size_used_bytes'), externalMiB: gauge('nodejs_external_memory_bytes') }
}

const sizeLabel = (size: number) => size >= 1_000_000 ? `${size / 1_000_000}M` : `${size / 1000}k`

// ---- main --------------------------------------------------------------------------------
async function main () {
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryMiB: Math.round(os.totalmem() / 2 ** 20), node: process.version },
    settings: { ...settings, serverUrl: settings.serverUrl.replace(/\/\/[^@]*@/, '//***@') },
    serviceCommit: (() => { try { return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim() } catch { return null } })()
  }
  const has = (name: ServerName) => settings.servers.includes(name)
  if (settings.build) {
    console.log('building (npm run build)...')
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
  }
  if (has('peer')) ensurePeerInstalled()

  let bench: BenchDatabase | undefined
  // An A/B run's other build (BENCH_BASELINE_ENTRY), on a database of its own seeded alike.
  let base: BenchDatabase | undefined
  const baselines: Partial<Record<'lean' | 'peer', SeededDatabase>> = {}
  const servers: ServerProcess[] = []
  const cleanup = async () => {
    for (const s of servers) await s.stop().catch(() => {})
    for (const db of [bench, base, ...Object.values(baselines)]) await db?.drop().catch(err => console.error(`could not drop ${db.name}: ${err.message}`))
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })

  try {
    bench = await createBenchDatabase(settings.serverUrl)
    if (has('lean')) baselines.lean = await createLeanDatabase(settings.serverUrl, `${bench.name}_lean`, await createPasswordHasher().hash(SEED_PASSWORD))
    if (has('peer')) baselines.peer = await createPeerDatabase(settings.serverUrl, `${bench.name}_peer`, peerPasswordHash())
    if (settings.baselineEntry && has('floor')) base = await createBenchDatabase(settings.serverUrl, { name: `${bench.name}_base`, migrate: migrateWith(settings.baselineEntry) })
    const databases: Array<BenchDatabase | SeededDatabase> = [bench, ...(base ? [base] : []), ...Object.values(baselines)]
    console.log(`databases: PostgreSQL ${settings.serverUrl.replace(/\/\/[^@]*@/, '//***@')}/${databases.map(d => d.name).join(', ')} (fresh, dropped at the end); redis: ${settings.redisUrl ? 'REDIS_URL (the service and the same-work floor count there)' : 'none (in-process stores)'}`)
    const seeding: Record<string, number> = {}
    const growAll = async (size: number) => {
      const started = performance.now()
      for (const db of databases) seeding[`${size}:${db.name.match(/_(lean|peer|base)$/)?.[1] ?? 'service'}`] = await db.growTo(size)
      return performance.now() - started
    }
    // The cost of growth: the reads at 1,000, 10,000 and 1,000,000 users (the main size is measured in full).
    const growthSizes = [1_000, 10_000, ...(settings.million && settings.users < 1_000_000 ? [1_000_000] : [])].filter(n => n !== settings.users)
    const early = growthSizes.filter(n => n < settings.users)
    const late = growthSizes.filter(n => n > settings.users)
    await growAll(early[0] ?? settings.users)

    const adminEmail = 'bench-admin@example.test'
    const adminPassword = 'Bench-Admin-Password-1'
    const common: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      DATABASE_URL: bench.url,
      DB_POOL_SIZE: '8',
      JWT_SECRET: randomBytes(48).toString('base64url'),
      MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_EXPIRY: '3600',
      REFRESH_TOKEN_EXPIRY: '86400',
      // The bench measures throughput, not the limiters: the request budgets far out of reach
      // (one client address stands for many clients). The account lockout stays at the
      // contract's default (5 failures): correct logins must never trip it.
      RATE_LIMIT_MAX: '1000000000',
      RATE_LIMIT_USER_MAX: '1000000000',
      AUTH_RATE_LIMIT_MAX: '1000000000',
      LOGIN_IP_MAX_FAILURES: '1000000000',
      ADMIN_EMAIL: adminEmail,
      ADMIN_PASSWORD: adminPassword
    }
    delete common.LOGIN_MAX_FAILURES
    // The same-work floor mirrors the service's auth-state cache only when the built service has one.
    const cachesAuthState = readFileSync(path.join(ROOT, 'dist/src/plugins/app/auth.js'), 'utf8').includes('AuthStateCache')
    common.FLOOR_AUTH_CACHE = cachesAuthState ? '1' : '0'
    results.authStateCache = cachesAuthState
    if (settings.redisUrl) common.REDIS_KEY_PREFIX = `bench:${stamp}:`
    else delete common.REDIS_URL
    const profileDir = path.join(resultsDir, `prof-${stamp}`)
    const prof = (name: string) => settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${name}`] : []
    const threadpool = common.UV_THREADPOOL_SIZE ?? String(Math.max(2, os.availableParallelism()))
    const logOf = (name: string) => path.join(resultsDir, `${stamp}-${name}.log`)
    const start = startCommand()
    console.log(`service: node ${[...start.flags, ...settings.serviceNodeFlags].join(' ')} ${path.relative(ROOT, start.entry)} (as npm start)`)

    const entries: Entry[] = []
    const add = async (name: ServerName, args: string[], extraEnv: NodeJS.ProcessEnv, database: string) => {
      const port = await freePort()
      const server = await startServer(name, args, { ...common, ...extraEnv, PORT: String(port) }, port, logOf(name))
      servers.push(server)
      entries.push({ server, target: { name, url: server.url, database, adminToken: '', userIds: [], cursors: [] } })
      console.log(`${name} pid ${server.pid} on ${server.url} (RSS ${server.memory().rssMiB.toFixed(1)} MiB at start)`)
    }
    // BENCH_SERVICE_NODE_FLAGS come after the start script's, so they override them.
    await add('service', [...prof('service'), ...start.flags, ...settings.serviceNodeFlags, start.entry], {}, bench.name)
    if (baselines.lean) await add('lean', [...prof('lean'), path.join(ROOT, 'bench/lean/server.mjs')], { DATABASE_URL: baselines.lean.url, UV_THREADPOOL_SIZE: threadpool }, baselines.lean.name)
    // The peer runs as its own package would (Node's defaults, libuv's default pool of 4 for bcrypt).
    if (baselines.peer) await add('peer', [...prof('peer'), path.join(PEER_DIR, 'src', 'server.js')], { DATABASE_URL: baselines.peer.url }, baselines.peer.name)
    if (has('floor')) {
      if (settings.baselineEntry) console.log(`baseline in the same-work floor's place: ${settings.baselineEntry} (service/floor is this build over that one)`)
      if (base) await add('floor', [...prof('floor'), ...start.flags, settings.baselineEntry!], { DATABASE_URL: base.url, UV_THREADPOOL_SIZE: threadpool, ...settings.baselineEnv }, base.name)
      else await add('floor', [...prof('floor'), path.join(ROOT, 'bench/floor/server.mjs')], { UV_THREADPOOL_SIZE: threadpool }, bench.name)
    }
    results.rssAtStartMiB = Object.fromEntries(servers.map(s => [s.name, s.memory().rssMiB]))
    const target = (name: ServerName) => entries.find(e => e.target.name === name)?.target
    const dbOf = (t: Target) => t.name === 'lean' ? baselines.lean! : t.name === 'peer' ? baselines.peer! : t.name === 'floor' && base ? base : bench!
    for (const { target: t } of entries) t.adminToken = await login(t.url, t.name === 'lean' || t.name === 'peer' ? BASELINE_ADMIN_EMAIL : adminEmail, t.name === 'lean' || t.name === 'peer' ? SEED_PASSWORD : adminPassword)
    const sampleAll = async () => { for (const { target: t } of entries) t.userIds = await dbOf(t).sampleIds(10_000) }
    await sampleAll()
    const state: BenchState = { seeded: () => bench!.seeded, runTag: stamp.replace(/\D/g, '').slice(-10) }
    for (const { target: t } of entries) await collectCursors(t)

    const service = target('service')!
    const parity: string[] = []
    // Another build on its own database has other ids: the same status and shape, as for the baselines.
    if (target('floor')) parity.push(...await (base ? checkBaselineParity : checkFloorParity)(service, target('floor')!))
    for (const name of ['lean', 'peer'] as const) if (target(name)) parity.push(...await checkBaselineParity(service, target(name)!))
    for (const p of parity) console.log(`PARITY MISMATCH ${p}`)
    if (parity.length === 0) console.log(`parity: ${entries.slice(1).map(e => e.target.name).join(', ')} answer like the service (the same-work floor byte for byte, the others in status and shape)`)
    results.parity = parity

    const growth: Comparison[] = []
    const growthEntries = entries.filter(e => GROWTH_SERVERS.includes(e.target.name))
    // The first step runs right after start: without a longer warm-up it would measure the JIT
    // compiling the servers' code, not the table's size.
    let growthWarmupSeconds = quick ? 1 : 5
    const measureGrowth = async (size: number) => {
      console.log(`\n== growth: ${size.toLocaleString('en')} users (${settings.growthRounds} rounds x ${settings.growthSeconds}s)`)
      header()
      await sampleAll()
      for (const name of GROWTH_SCENARIOS) {
        if (!wants(name)) continue
        growth.push(await compare(`${name}@${sizeLabel(size)}`, scenarios[name], growthEntries, state, settings.growthRounds, settings.growthSeconds, growthWarmupSeconds))
        growthWarmupSeconds = 1
      }
    }
    for (const size of early) {
      if (bench.seeded < size) await growAll(size)
      if (wants('growth')) await measureGrowth(size)
    }

    await growAll(settings.users)
    // Without these the token tables start empty, and a statement prepared while they are tiny
    // keeps a sequential-scan plan (see bench/README.md).
    for (const db of databases) seeding[`endedLogins:${db.name}`] = await db.seedEndedLogins()
    await sampleAll()
    console.log(`\n== ${settings.users.toLocaleString('en')} users: ${settings.rounds} rounds x ${settings.seconds}s per server, interleaved, after ${settings.warmupSeconds}s warm-up each`)
    header()
    const main: Comparison[] = []
    for (const scenario of Object.values(scenarios)) {
      if (!wants(scenario.name)) continue
      main.push(await compare(scenario.name, scenario, entries, state, settings.rounds, settings.seconds, settings.warmupSeconds))
    }
    results.scenarios = main
    const rpsOf = (name: string) => main.find(c => c.scenario === name)?.servers.service?.rps
    const [page, pageBr, user, userBr] = [rpsOf('list_users_page'), rpsOf('list_users_page_br'), rpsOf('get_user'), rpsOf('get_user_br')]
    if (page && pageBr) {
      results.compressionCost = pageBr / page
      console.log(`compression: service list_users_page_br / list_users_page = ${(pageBr / page).toFixed(2)} (1.00: free)`)
    }
    if (user && userBr) {
      results.smallAnswerCompressionCost = userBr / user
      console.log(`compression of a small answer (left uncompressed): service get_user_br / get_user = ${(userBr / user).toFixed(2)} (1.00: free)`)
    }

    // Latency under a load every server can carry: get_user at half the lean floor's maximum rate.
    const pacedEntries = entries.filter(e => e.target.name === 'service' || e.target.name === 'lean')
    const getUser = main.find(c => c.scenario === 'get_user')
    const leanMax = getUser?.servers.lean?.rps ?? getUser?.servers.service?.rps
    if (leanMax && wants('half_rate')) {
      const halfRate = Math.round(leanMax / 2)
      // autocannon paces by a per-second quota per connection; few connections keep the bursts small.
      // Its coordinated-omission correction assumes a 1 ms interval whatever the rate, so it is off.
      const paced = { ...scenarios.get_user, connections: PACED_CONNECTIONS }
      const pacing = { overallRate: halfRate, ignoreCoordinatedOmission: true }
      console.log(`\n== get_user at half the lean floor's max rate (${halfRate} req/s, ${PACED_CONNECTIONS} connections, ${settings.pacedSeconds}s)`)
      header()
      const half: Record<string, Summary> = {}
      for (const e of pacedEntries) {
        half[e.target.name] = summarise([await measure(e, paced, state, settings.pacedSeconds, pacing)], [])
        printSummary('get_user@half-rate', e.target.name, half[e.target.name])
        if (half[e.target.name].rps < 0.95 * halfRate) console.log(`note: the ${e.target.name} did not keep up: ${half[e.target.name].rps.toFixed(0)} of ${halfRate} req/s`)
      }
      results.halfRate = { rate: halfRate, ...half }
    }
    if (leanMax && wants('login_storm')) {
      const paced = { ...scenarios.get_user, connections: PACED_CONNECTIONS }
      const stormRate = Math.round(leanMax / 5)
      console.log(`\n== get_user at ${stormRate} req/s (a fifth of the lean floor's max) during a login storm (${scenarios.login_many.connections} connections, many accounts), ${settings.pacedSeconds}s`)
      header()
      const storm: Record<string, { getUser: Summary, login: Summary }> = {}
      for (const e of pacedEntries) {
        const [reads, logins] = await Promise.all([
          measure(e, paced, state, settings.pacedSeconds, { overallRate: stormRate, ignoreCoordinatedOmission: true }),
          measure(e, scenarios.login_many, state, settings.pacedSeconds)
        ])
        storm[e.target.name] = { getUser: summarise([reads], []), login: summarise([logins], []) }
        printSummary('get_user@login-storm', e.target.name, storm[e.target.name].getUser)
        printSummary('login(storm)', e.target.name, storm[e.target.name].login)
      }
      results.loginStorm = { getUserRate: stormRate, ...storm }
    }

    for (const size of wants('growth') ? late : []) {
      console.log(`\nseeding up to ${size.toLocaleString('en')} users (every database)...`)
      await growAll(size)
      await measureGrowth(size)
    }
    results.growth = growth
    results.seedingMs = seeding

    const memory: Record<string, Record<string, number>> = Object.fromEntries(servers.map(s => [s.name, { ...s.memory() }]))
    for (const server of servers) Object.assign(memory[server.name], await heapOf(server.url))
    results.memory = memory
    console.log(`\npeak RSS (VmHWM) over the whole run: ${servers.map(s => `${s.name} ${memory[s.name].hwmMiB.toFixed(1)} MiB`).join(', ')}`)
    console.log(`service heap now: V8 ${memory.service.heapTotalMiB?.toFixed(1)} MiB (used ${memory.service.heapUsedMiB?.toFixed(1)}), external ${memory.service.externalMiB?.toFixed(1)} MiB`)
    console.log(`seeding (ms): ${Object.entries(seeding).map(([k, ms]) => `${k} ${Math.round(ms)}`).join(', ')}`)

    const report = printReport(main, growth, results, memory.service.hwmMiB)
    results.targets = report.targets
    const failures = [...main, ...growth].filter(c => Object.values(c.servers).some(s => s.non2xx + s.errors > 0)).map(c => c.scenario)
    if (failures.length) console.log(`FAILURES (non-2xx or errors) in: ${failures.join(', ')}`)
    // A failed or non-comparable run must not pass for a good one (CI).
    if (failures.length || parity.length) process.exitCode = 1
    results.finishedAt = new Date().toISOString()
  } finally {
    await cleanup()
    const file = path.join(resultsDir, `${stamp}.json`)
    writeFileSync(file, JSON.stringify(results, null, 2))
    console.log(`results: ${path.relative(ROOT, file)}`)
  }
}

// ---- the final table and the targets ------------------------------------------------------
interface TargetCheck { name: string, value: number | null, goal: string, met: boolean }

function printReport (main: Comparison[], growth: Comparison[], results: Record<string, unknown>, serviceHwmMiB: number) {
  const byName = (name: string) => main.find(c => c.scenario === name)
  const r2 = (n: number | undefined) => n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(2)
  const n0 = (n: number | undefined) => n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(0)
  const cpu = (s: Summary | undefined) => s ? `${n0(s.cpuUsPerRequest)} + ${n0(s.pgCpuUsPerRequest)}` : '-'
  console.log('\n== summary (2xx answers per second; CPU µs per request = server process + its PostgreSQL backends)')
  console.log('| scenario | service | lean | peer | same-work floor | service/lean | service/peer | service/floor | p99 ms service / lean / peer | CPU µs service | CPU µs lean | CPU µs peer | non-2xx service / lean / peer / floor |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const c of [...main, ...growth]) {
    const s = c.servers
    const non2xx = (['service', 'lean', 'peer', 'floor'] as const).map(n => s[n] ? String(s[n]!.non2xx + s[n]!.errors) : '-').join(' / ')
    console.log(`| ${c.scenario} | ${n0(s.service?.rps)} | ${n0(s.lean?.rps)} | ${n0(s.peer?.rps)} | ${n0(s.floor?.rps)} | ${r2(c.ratios.lean)} | ${r2(c.ratios.peer)} | ${r2(c.ratios.floor)} | ${[s.service, s.lean, s.peer].map(x => x ? x.p99.toFixed(0) : '-').join(' / ')} | ${cpu(s.service)} | ${cpu(s.lean)} | ${cpu(s.peer)} | ${non2xx} |`)
  }

  const targets: TargetCheck[] = []
  const ratio = (label: string, scenario: string, against: 'lean' | 'peer', goal: number) => {
    const c = byName(scenario)
    const value = c?.ratios[against]
    if (value === undefined) return
    const clean = Object.values(c!.servers).every(s => s.non2xx + s.errors === 0)
    targets.push({ name: `${label} (service/${against})`, value, goal: `≥ ${goal.toFixed(2)}${clean ? '' : ', no non-2xx'}`, met: value >= goal && clean })
  }
  ratio('get_user', 'get_user', 'lean', 0.80)
  ratio('list page, exact total', 'list_users_page', 'lean', 0.75)
  ratio('list cursor', 'list_users_cursor', 'lean', 0.80)
  ratio('refresh', 'refresh', 'lean', 0.80)
  ratio('login, many accounts', 'login_many', 'lean', 0.90)
  ratio('login, one account, 16 connections', 'login_one_16', 'lean', 0.90)
  ratio('login, one account, 50 connections', 'login_one_50', 'lean', 0.90)
  ratio('create_user', 'create_user', 'lean', 0.90)
  ratio('mixed', 'mixed', 'lean', 0.80)
  for (const name of ['get_user', 'list_users_page', 'list_users_cursor']) ratio(`${name} vs peer`, name, 'peer', 4)
  for (const name of ['login_many', 'login_one_16', 'login_one_50']) ratio(`${name} vs peer`, name, 'peer', 2)
  const half = results.halfRate as { rate: number, service: Summary } | undefined
  if (half) targets.push({ name: `get_user p99 at half the lean floor's max (${half.rate} req/s)`, value: half.service.p99, goal: '< 10 ms', met: half.service.p99 < 10 && half.service.non2xx === 0 })
  const hwmMB = serviceHwmMiB * 2 ** 20 / 1e6
  targets.push({ name: 'service peak RSS (VmHWM, MB)', value: hwmMB, goal: '< 200 MB', met: hwmMB < 200 })
  // Flat: the service's keyset page at every size from 10,000 up within 20 % of its best.
  const cursorAt = [
    ...growth.filter(g => g.scenario.startsWith('list_users_cursor@')).map(g => [g.scenario.split('@')[1], g.servers.service!.rps] as const),
    ...(byName('list_users_cursor') ? [[sizeLabel(Number((results.settings as { users: number }).users)), byName('list_users_cursor')!.servers.service!.rps] as const] : [])
  ].filter(([label]) => label !== '1k')
  if (cursorAt.length > 1) {
    const rates = cursorAt.map(([, rps]) => rps)
    const flat = Math.min(...rates) / Math.max(...rates)
    targets.push({ name: `list cursor flat (service, ${cursorAt.map(([l, r]) => `${l} ${r.toFixed(0)}/s`).join(', ')}): slowest/fastest`, value: flat, goal: '≥ 0.80', met: flat >= 0.8 })
  }
  const page = byName('list_users_page')
  if (page?.servers.lean) {
    const value = page.servers.service!.pgCpuUsPerRequest / page.servers.lean.pgCpuUsPerRequest
    targets.push({ name: `PostgreSQL CPU per list page, service/lean (${page.servers.service!.pgCpuUsPerRequest.toFixed(0)} / ${page.servers.lean.pgCpuUsPerRequest.toFixed(0)} µs)`, value, goal: '≤ 1.50', met: value <= 1.5 })
  }
  // Search answers in about the time of a plain page (CONTRACT.md, "Advanced search"): the service's
  // search over its own plain page (page mode, exact total) at each size both were measured at.
  const users = Number((results.settings as { users: number }).users)
  const serviceRps = new Map<string, number>()
  for (const c of main) if (c.servers.service) serviceRps.set(`${c.scenario}@${users}`, c.servers.service.rps)
  for (const c of growth) {
    const [scenario, label] = c.scenario.split('@')
    const size = [1_000, 10_000, 1_000_000].find(n => sizeLabel(n) === label)
    if (size && c.servers.service) serviceRps.set(`${scenario}@${size}`, c.servers.service.rps)
  }
  const searchRatios = [...new Set([...serviceRps.keys()].map(key => Number(key.split('@')[1])))].sort((a, b) => a - b).flatMap(size => {
    const [search, page] = [serviceRps.get(`search@${size}`), serviceRps.get(`list_users_page@${size}`)]
    return search && page ? [{ size: sizeLabel(size), ratio: search / page }] : []
  })
  for (const { size, ratio } of searchRatios) console.log(`ratio search/list_users_page@${size} (service) = ${ratio.toFixed(2)}`)
  const largest = searchRatios.at(-1)
  if (largest) targets.push({ name: `search over a plain page at ${largest.size} users (service)`, value: largest.ratio, goal: '≥ 0.80', met: largest.ratio >= 0.8 })
  const dirty = [...main, ...growth].flatMap(c => Object.entries(c.servers).filter(([, s]) => s.non2xx + s.errors > 0).map(([n, s]) => `${c.scenario}/${n}: ${s.non2xx + s.errors}`))
  targets.push({ name: `zero non-2xx in every scenario and server${dirty.length ? ` (${dirty.join(', ')})` : ''}`, value: dirty.length, goal: '0', met: dirty.length === 0 })

  console.log('\n== targets')
  for (const t of targets) console.log(`${t.met ? 'MET    ' : 'NOT MET'}  ${t.name}: ${t.value === null ? '-' : Number.isInteger(t.value) ? t.value : t.value.toFixed(2)} (target ${t.goal})`)
  console.log(`${targets.filter(t => t.met).length} of ${targets.length} targets met`)
  return { targets }
}

await main()

// npm run bench: the service against a framework-free floor doing the same work (see bench/README.md).
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon, { type Options, type Result } from 'autocannon'
import { SEED_PASSWORD, createBenchDatabase, seedEmail, type BenchDatabase } from './lib/database.js'
import { freePort, postgresCpu, postgresCpuSince, sampleRss, startServer, type ServerProcess } from './lib/servers.js'
import { scenarios, type BenchState, type Scenario, type Target } from './lib/scenarios.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const env = process.env
const quick = env.BENCH_QUICK === '1'
const settings = {
  serverUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432',
  redisUrl: env.REDIS_URL,
  users: Number(env.BENCH_USERS ?? 100_000),
  seconds: Number(env.BENCH_DURATION ?? (quick ? 1 : 4)),
  warmupSeconds: Number(env.BENCH_WARMUP ?? (quick ? 1 : 2)),
  // The paced runs (half rate, login storm) give one p99 each: longer runs make it steadier.
  pacedSeconds: Number(env.BENCH_PACED_DURATION ?? (quick ? 1 : 10)),
  rounds: Number(env.BENCH_ROUNDS ?? (quick ? 1 : 5)),
  growthSeconds: Number(env.BENCH_GROWTH_DURATION ?? (quick ? 1 : 3)),
  growthRounds: Number(env.BENCH_GROWTH_ROUNDS ?? (quick ? 1 : 2)),
  million: env.BENCH_SKIP_1M !== '1' && !quick,
  only: env.BENCH_SCENARIOS?.split(',').map(s => s.trim()).filter(Boolean),
  cpuProfile: env.BENCH_CPU_PROF === '1',
  build: env.BENCH_SKIP_BUILD !== '1',
  /** Extra node flags for the service only, for experiments (e.g. "--max-semi-space-size=4"). */
  serviceNodeFlags: env.BENCH_SERVICE_NODE_FLAGS?.split(' ').filter(Boolean) ?? [],
  /**
   * Another build of the service (its dist/src/start.cjs) run in the floor's place, with the
   * service's flags: the ratio is then this build over that one (A/B), or noise alone (A/A).
   */
  baselineEntry: env.BENCH_BASELINE_ENTRY
}

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

/** BENCH_SCENARIOS names what to run: scenario names, and growth, half_rate, login_storm. */
const wants = (part: string) => !settings.only || settings.only.includes(part)

const stamp = new Date().toISOString().replace(/[:.]/g, '-')
const resultsDir = path.join(ROOT, 'bench', 'results')
mkdirSync(resultsDir, { recursive: true })

// The bench database's name, for attributing PostgreSQL CPU time to the runs.
let databaseName = ''

// ---- one measured run and its summary ----------------------------------------------------
interface Run {
  server: string
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
  /** CPU time per answered request: the server process, and the bench database's PostgreSQL backends (µs). */
  cpuUsPerRequest: number
  sysCpuUsPerRequest: number
  pgCpuUsPerRequest: number
}

async function measure (target: Target, server: ServerProcess, scenario: Scenario, state: BenchState, seconds: number, extra: Partial<Options> = {}): Promise<Run> {
  const { path: requestPath, ...options } = { ...await scenario.prepare(target, state), ...extra }
  const rss = sampleRss(server)
  const [cpuBefore, sysBefore, pgBefore] = [server.cpuMs(), server.sysCpuMs(), postgresCpu(databaseName)]
  const result: Result = await autocannon({ connections: scenario.connections, duration: seconds, timeout: 20, ...options, url: `${target.url}${requestPath ?? '/'}` })
  const answered = Math.max(1, result.requests.total)
  return {
    server: target.name,
    rps: result.requests.total / result.duration,
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
    pgCpuUsPerRequest: 1000 * postgresCpuSince(pgBefore, databaseName) / answered
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

interface Summary { rps: number, rpsMin: number, rpsMax: number, p50: number, p99: number, non2xx: number, errors: number, rssPeakMiB: number, cpuUsPerRequest: number, pgCpuUsPerRequest: number }
function summarise (runs: Run[], warmups: Run[]): Summary {
  return {
    rps: mean(runs.map(r => r.rps)),
    rpsMin: Math.min(...runs.map(r => r.rps)),
    rpsMax: Math.max(...runs.map(r => r.rps)),
    p50: median(runs.map(r => r.p50)),
    p99: median(runs.map(r => r.p99)),
    // Failures count in the warm-up too: the bench must see none at all.
    non2xx: [...runs, ...warmups].reduce((n, r) => n + r.non2xx, 0),
    errors: [...runs, ...warmups].reduce((n, r) => n + r.errors, 0),
    rssPeakMiB: Math.max(...[...runs, ...warmups].map(r => r.rssPeakMiB)),
    cpuUsPerRequest: median(runs.map(r => r.cpuUsPerRequest)),
    pgCpuUsPerRequest: median(runs.map(r => r.pgCpuUsPerRequest))
  }
}

// ---- printing ----------------------------------------------------------------------------
const fmt = (n: number, digits = 0) => n.toFixed(digits).padStart(9)
function header () {
  console.log(`${'scenario'.padEnd(22)}${'server'.padEnd(9)}${'req/s'.padStart(9)}${'(min'.padStart(9)}${'max)'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'non-2xx'.padStart(9)}${'errors'.padStart(9)}${'RSS MiB'.padStart(9)}${'CPU µs/req'.padStart(11)}${'PG µs/req'.padStart(10)}`)
}
function printSummary (name: string, server: string, s: Summary) {
  const flag = s.non2xx + s.errors > 0 ? '  <-- FAILURES' : ''
  console.log(`${name.padEnd(22)}${server.padEnd(9)}${fmt(s.rps)}${fmt(s.rpsMin)}${fmt(s.rpsMax)}${fmt(s.p50, 1)}${fmt(s.p99, 1)}${fmt(s.non2xx)}${fmt(s.errors)}${fmt(s.rssPeakMiB, 1)}${fmt(s.cpuUsPerRequest).padStart(11)}${fmt(s.pgCpuUsPerRequest).padStart(10)}${flag}`)
}

// ---- the comparison: warm-up, then rounds interleaved service/floor/service/floor... ------
interface Comparison { scenario: string, connections: number, seconds: number, ratio: number, service: Summary, floor: Summary, runs: Run[] }

async function compare (label: string, scenario: Scenario, pairs: Array<[Target, ServerProcess]>, state: BenchState, rounds: number, seconds: number, warmupSeconds: number): Promise<Comparison> {
  const warmups: Record<string, Run[]> = { service: [], floor: [] }
  const runs: Record<string, Run[]> = { service: [], floor: [] }
  for (const [target, server] of pairs) warmups[target.name].push(await measure(target, server, scenario, state, warmupSeconds))
  // Which server goes first alternates (service, floor, floor, service, service, floor...): when
  // the shared machine speeds up or slows down during a scenario, both get their share of it.
  for (let round = 0; round < rounds; round++) {
    for (const [target, server] of round % 2 === 0 ? pairs : [...pairs].reverse()) {
      runs[target.name].push(await measure(target, server, scenario, state, seconds))
    }
  }
  const service = summarise(runs.service, warmups.service)
  const floor = summarise(runs.floor, warmups.floor)
  printSummary(label, 'service', service)
  printSummary(label, 'floor', floor)
  const ratio = service.rps / floor.rps
  console.log(`ratio ${label} service/floor=${ratio.toFixed(2)}`)
  return { scenario: label, connections: scenario.connections, seconds, ratio, service, floor, runs: [...runs.service, ...runs.floor] }
}

// ---- setup helpers -----------------------------------------------------------------------
async function login (url: string, email: string, password: string) {
  const res = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) })
  if (res.status !== 200) throw new Error(`admin login failed: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { data: { accessToken: string } }).data.accessToken
}

/** Pages through the list (limit 100) and keeps each nextCursor: valid keyset positions spread over the first rows. */
async function collectCursors (target: Target, token: string, pages = 100) {
  let cursor: string | null = null
  for (let page = 0; page < pages; page++) {
    const qs: string = cursor ? `&cursor=${cursor}` : ''
    const res = await fetch(`${target.url}/api/v1/users?limit=100${qs}`, { headers: { authorization: `Bearer ${token}` } })
    if (res.status !== 200) throw new Error(`listing users on ${target.name} failed: ${res.status} ${await res.text()}`)
    const body = await res.json() as { pagination: { nextCursor: string | null } }
    cursor = body.pagination.nextCursor
    if (!cursor) break
    target.cursors.push(cursor)
  }
}

/** A value's shape: types and keys, not the values (tokens, ids and times differ between two answers). */
function shape (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
  return value === null ? null : typeof value
}

const VOLATILE_HEADERS = new Set(['date', 'x-request-id', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'content-length', 'location', 'etag'])

/**
 * The floor must serve the same answers: the same JSON for a user and a list page, the same shape
 * (keys and types) for create, login and refresh, and the same headers.
 */
async function checkParity (service: Target, floor: Target, token: string, id: string) {
  const problems: string[] = []
  const auth = { authorization: `Bearer ${token}` }
  const json = { 'content-type': 'application/json' }
  const call = async (t: Target, method: string, url: string, headers: Record<string, string>, body?: unknown) => {
    const res = await fetch(`${t.url}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: res.status, text: await res.text(), headers: Object.fromEntries(res.headers.entries()) }
  }
  const compareHeaders = (what: string, a: Record<string, string>, b: Record<string, string>) => {
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (VOLATILE_HEADERS.has(name) || a[name] === b[name]) continue
      problems.push(`${what}: header ${name} is ${JSON.stringify(a[name])} on the service, ${JSON.stringify(b[name])} on the floor`)
    }
  }
  for (const url of [`/api/v1/users/${id}`, '/api/v1/users?limit=3']) {
    const [a, b] = await Promise.all([service, floor].map(t => call(t, 'GET', url, auth)))
    if (a.status !== b.status || a.text !== b.text) problems.push(`GET ${url}: service ${a.status} ${a.text.slice(0, 200)} / floor ${b.status} ${b.text.slice(0, 200)}`)
    compareHeaders(`GET ${url}`, a.headers, b.headers)
  }
  const email = (t: Target) => `parity-${t.name}-${Date.now()}@example.test`
  const writes: Array<[string, string, (t: Target) => Record<string, string>, (t: Target, previous?: string) => unknown]> = [
    ['POST', '/api/v1/users', () => ({ ...json, ...auth }), t => ({ email: email(t), password: SEED_PASSWORD, firstName: 'Parity', lastName: 'Check' })],
    ['POST', '/api/v1/auth/login', () => json, () => ({ email: seedEmail(2), password: SEED_PASSWORD })],
    ['POST', '/api/v1/auth/refresh', () => json, (_t, previous) => ({ refreshToken: previous })]
  ]
  const previous: Record<string, string | undefined> = {}
  for (const [method, url, headers, body] of writes) {
    const [a, b] = await Promise.all([service, floor].map(t => call(t, method, url, headers(t), body(t, previous[t.name]))))
    if (a.status !== b.status || JSON.stringify(shape(JSON.parse(a.text))) !== JSON.stringify(shape(JSON.parse(b.text)))) {
      problems.push(`${method} ${url}: service ${a.status} ${a.text.slice(0, 200)} / floor ${b.status} ${b.text.slice(0, 200)}`)
    }
    compareHeaders(`${method} ${url}`, a.headers, b.headers)
    for (const [t, r] of [[service, a], [floor, b]] as const) previous[t.name] = (JSON.parse(r.text) as { data?: { refreshToken?: string } }).data?.refreshToken
  }
  for (const p of problems) console.log(`PARITY MISMATCH ${p}`)
  if (problems.length === 0) console.log('parity: the floor answers like the service (bodies, shapes and headers)')
  return problems
}

/** The V8 heap and external memory as prom-client's default metrics report them (MiB). */
async function heapOf (url: string) {
  const text = await fetch(`${url}/metrics`).then(r => r.text(), () => '')
  const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20
  return { heapTotalMiB: gauge('nodejs_heap_size_total_bytes'), heapUsedMiB: gauge('nodejs_heap_size_used_bytes'), externalMiB: gauge('nodejs_external_memory_bytes') }
}

// ---- main --------------------------------------------------------------------------------
async function main () {
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryMiB: Math.round(os.totalmem() / 2 ** 20), node: process.version },
    settings: { ...settings, serverUrl: settings.serverUrl.replace(/\/\/[^@]*@/, '//***@') }
  }
  if (settings.build) {
    console.log('building (npm run build)...')
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
  }

  let bench: BenchDatabase | undefined
  const servers: ServerProcess[] = []
  const cleanup = async () => {
    for (const s of servers) await s.stop().catch(() => {})
    await bench?.drop().catch(err => console.error(`could not drop the bench database: ${err.message}`))
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })

  try {
    bench = await createBenchDatabase(settings.serverUrl)
    databaseName = bench.name
    console.log(`database: PostgreSQL ${settings.serverUrl.replace(/\/\/[^@]*@/, '//***@')}/${bench.name} (fresh, dropped at the end); redis: ${settings.redisUrl ? 'REDIS_URL' : 'none (in-process stores)'}`)
    const seeding: Record<string, number> = {}
    // The cost of growth: get_user and keyset listing at 10k and 1M users (the main size is measured in full).
    const growthSizes = [10_000, ...(settings.million && settings.users < 1_000_000 ? [1_000_000] : [])]
    seeding[growthSizes[0]] = await bench.growTo(growthSizes[0])

    const adminEmail = 'bench-admin@example.test'
    const adminPassword = 'Bench-Admin-Password-1'
    const [servicePort, floorPort] = [await freePort(), await freePort()]
    const common: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      DATABASE_URL: bench.url,
      DB_POOL_SIZE: '8',
      JWT_SECRET: randomBytes(48).toString('base64url'),
      JWT_EXPIRY: '3600',
      REFRESH_TOKEN_EXPIRY: '86400',
      // The bench measures throughput, not the limiters: every limit far out of reach.
      RATE_LIMIT_MAX: '1000000000',
      AUTH_RATE_LIMIT_MAX: '1000000000',
      LOGIN_MAX_FAILURES: '1000000000',
      LOGIN_IP_MAX_FAILURES: '1000000000',
      ADMIN_EMAIL: adminEmail,
      ADMIN_PASSWORD: adminPassword
    }
    // The floor mirrors the service's auth-state cache only when the built service has one.
    const cachesAuthState = readFileSync(path.join(ROOT, 'dist/src/plugins/app/auth.js'), 'utf8').includes('AuthStateCache')
    common.FLOOR_AUTH_CACHE = cachesAuthState ? '1' : '0'
    results.authStateCache = cachesAuthState
    console.log(`auth-state cache: ${cachesAuthState ? 'on in the service, so on in the floor' : 'none in the service, none in the floor'}`)
    if (settings.redisUrl) common.REDIS_KEY_PREFIX = `bench:${stamp}:`
    else delete common.REDIS_URL
    const profileDir = path.join(resultsDir, `prof-${stamp}`)
    const start = startCommand()
    console.log(`service: node ${[...start.flags, ...settings.serviceNodeFlags].join(' ')} ${path.relative(ROOT, start.entry)} (as npm start)`)
    const service = await startServer('service', [
      ...(settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/service`] : []),
      // BENCH_SERVICE_NODE_FLAGS come after the start script's, so they override them.
      ...start.flags, ...settings.serviceNodeFlags, start.entry
    ], { ...common, PORT: String(servicePort) }, servicePort, path.join(resultsDir, `${stamp}-service.log`))
    servers.push(service)
    if (settings.baselineEntry) console.log(`baseline in the floor's place: ${settings.baselineEntry} (the ratios are this build over that one)`)
    const floor = await startServer('floor', [
      ...(settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/floor`] : []),
      ...(settings.baselineEntry ? [...start.flags, settings.baselineEntry] : [path.join(ROOT, 'bench/floor/server.mjs')])
    ], {
      ...common,
      PORT: String(floorPort),
      // The service's entry (src/start.cts) sizes libuv's pool for argon2 this way itself.
      UV_THREADPOOL_SIZE: common.UV_THREADPOOL_SIZE ?? String(Math.max(2, os.availableParallelism()))
    }, floorPort, path.join(resultsDir, `${stamp}-floor.log`))
    servers.push(floor)
    const idle = { service: service.memory().rssMiB, floor: floor.memory().rssMiB }
    console.log(`service pid ${service.pid} on ${service.url} (RSS ${idle.service.toFixed(1)} MiB at start); floor pid ${floor.pid} on ${floor.url} (RSS ${idle.floor.toFixed(1)} MiB)`)
    results.rssAtStartMiB = idle

    const serviceTarget: Target = { name: 'service', url: service.url, cursors: [] }
    const floorTarget: Target = { name: 'floor', url: floor.url, cursors: [] }
    const pairs: Array<[Target, ServerProcess]> = [[serviceTarget, service], [floorTarget, floor]]
    const state: BenchState = {
      adminToken: await login(service.url, adminEmail, adminPassword),
      userIds: await bench.sampleIds(10_000),
      seeded: () => bench!.seeded,
      runTag: stamp.replace(/\D/g, '').slice(-10)
    }
    results.parity = await checkParity(serviceTarget, floorTarget, state.adminToken, state.userIds[0])
    for (const target of [serviceTarget, floorTarget]) await collectCursors(target, state.adminToken)

    const growth: Comparison[] = []
    // The first step runs right after start: without a longer warm-up it would measure the JIT
    // compiling the service's (much larger) code, not the table's size.
    let growthWarmupSeconds = quick ? 1 : 5
    const measureGrowth = async (size: number) => {
      const label = size >= 1_000_000 ? `${size / 1_000_000}M` : `${size / 1000}k`
      console.log(`\n== growth: ${size.toLocaleString('en')} users (${settings.growthRounds} rounds x ${settings.growthSeconds}s)`)
      header()
      state.userIds = await bench!.sampleIds(10_000)
      for (const name of ['get_user', 'list_users_cursor']) {
        growth.push(await compare(`${name}@${label}`, scenarios[name], pairs, state, settings.growthRounds, settings.growthSeconds, growthWarmupSeconds))
      }
      growthWarmupSeconds = 1
    }
    if (wants('growth')) await measureGrowth(growthSizes[0])

    seeding[settings.users] = await bench.growTo(settings.users)
    // Without these the token tables start empty, and a statement prepared while they are tiny
    // keeps a sequential-scan plan (see bench/README.md).
    seeding.endedLogins = await bench.seedEndedLogins()
    state.userIds = await bench.sampleIds(10_000)
    console.log(`\n== ${settings.users.toLocaleString('en')} users: ${settings.rounds} rounds x ${settings.seconds}s per server, interleaved, after ${settings.warmupSeconds}s warm-up each`)
    header()
    const main: Comparison[] = []
    for (const scenario of Object.values(scenarios)) {
      if (!wants(scenario.name)) continue
      main.push(await compare(scenario.name, scenario, pairs, state, settings.rounds, settings.seconds, settings.warmupSeconds))
    }
    results.scenarios = main

    // Latency under load that both can carry: get_user at half the floor's maximum rate.
    const floorMax = main.find(c => c.scenario === 'get_user')?.floor.rps
    if (floorMax && wants('half_rate')) {
      const halfRate = Math.round(floorMax / 2)
      // autocannon paces by a per-second quota per connection; few connections keep the bursts small.
      // Its coordinated-omission correction assumes a 1 ms interval whatever the rate, so it is off.
      const paced = { ...scenarios.get_user, connections: PACED_CONNECTIONS }
      const pacing = { overallRate: halfRate, ignoreCoordinatedOmission: true }
      console.log(`\n== get_user at half the floor's max rate (${halfRate} req/s, ${PACED_CONNECTIONS} connections, ${settings.pacedSeconds}s)`)
      header()
      const half: Record<string, Summary> = {}
      for (const [target, server] of pairs) {
        half[target.name] = summarise([await measure(target, server, paced, state, settings.pacedSeconds, pacing)], [])
        printSummary('get_user@half-rate', target.name, half[target.name])
        if (half[target.name].rps < 0.95 * halfRate) console.log(`note: the ${target.name} did not keep up: ${half[target.name].rps.toFixed(0)} of ${halfRate} req/s`)
      }
      results.halfRate = { rate: halfRate, ...half }
    }
    if (floorMax && wants('login_storm')) {
      const paced = { ...scenarios.get_user, connections: PACED_CONNECTIONS }
      const stormRate = Math.round(floorMax / 5)
      console.log(`\n== get_user at ${stormRate} req/s (a fifth of the floor's max) during a login storm (${scenarios.login.connections} connections), ${settings.pacedSeconds}s`)
      header()
      const storm: Record<string, { getUser: Summary, login: Summary }> = {}
      for (const [target, server] of pairs) {
        const [getUser, logins] = await Promise.all([
          measure(target, server, paced, state, settings.pacedSeconds, { overallRate: stormRate, ignoreCoordinatedOmission: true }),
          measure(target, server, scenarios.login, state, settings.pacedSeconds)
        ])
        storm[target.name] = { getUser: summarise([getUser], []), login: summarise([logins], []) }
        printSummary('get_user@login-storm', target.name, storm[target.name].getUser)
        printSummary('login(storm)', target.name, storm[target.name].login)
        if (storm[target.name].getUser.rps < 0.95 * stormRate) console.log(`note: the ${target.name} did not keep up: ${storm[target.name].getUser.rps.toFixed(0)} of ${stormRate} req/s`)
      }
      results.loginStorm = { getUserRate: stormRate, ...storm }
    }

    for (const size of wants('growth') ? growthSizes.slice(1) : []) {
      console.log(`\nseeding up to ${size.toLocaleString('en')} users...`)
      seeding[size] = await bench.growTo(size)
      await measureGrowth(size)
    }
    results.growth = growth
    results.seedingMs = seeding

    const memory: Record<string, Record<string, number>> = Object.fromEntries(servers.map(s => [s.name, { ...s.memory() }]))
    for (const server of servers) Object.assign(memory[server.name], await heapOf(server.url))
    for (const [name, m] of Object.entries(memory)) {
      console.log(`${name} memory now: RSS ${m.rssMiB.toFixed(1)} MiB = V8 heap ${m.heapTotalMiB?.toFixed(1)} (used ${m.heapUsedMiB?.toFixed(1)}) + external ${m.externalMiB?.toFixed(1)} + the rest (code, stacks, native allocations)`)
    }
    console.log(`\npeak RSS (VmHWM) over the whole run: service ${memory.service.hwmMiB.toFixed(1)} MiB, floor ${memory.floor.hwmMiB.toFixed(1)} MiB`)
    console.log(`seeding: ${Object.entries(seeding).map(([n, ms]) => `${n === 'endedLogins' ? 'a past login each' : `${Number(n).toLocaleString('en')} users`} in ${(ms / 1000).toFixed(1)}s`).join(', ')}`)
    results.memory = memory
    const failures = [...main, ...growth].filter(c => c.service.non2xx + c.service.errors + c.floor.non2xx + c.floor.errors > 0).map(c => c.scenario)
    if (failures.length) console.log(`FAILURES (non-2xx or errors) in: ${failures.join(', ')}`)
    // A failed or non-comparable run must not pass for a good one (CI).
    if (failures.length || (results.parity as string[]).length) process.exitCode = 1
    results.finishedAt = new Date().toISOString()
  } finally {
    await cleanup()
    const file = path.join(resultsDir, `${stamp}.json`)
    writeFileSync(file, JSON.stringify(results, null, 2))
    console.log(`results: ${path.relative(ROOT, file)}`)
  }
}

await main()

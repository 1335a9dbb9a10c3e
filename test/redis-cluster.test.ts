import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { as, build, createUser, freePort, uniqueEmail, PASSWORD } from './helper.js'
import { login, refresh, sha256 } from './auth-helpers.js'

// A three-node Redis Cluster of the test's own on loopback ports (own directory, no persistence).
// The app gets REDIS_CLUSTER_NODES and a real database (DATABASE_URL when set, else embedded).
const run = promisify(execFile)
const cli = (port: number, ...args: string[]) => run('redis-cli', ['-c', '-p', String(port), ...args]).then(r => r.stdout.trim())

async function ownCluster (t: { teardown (fn: () => unknown): void }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'redis-cluster-'))
  const ports = [await freePort(), await freePort(), await freePort()]
  const servers = new Map<number, ChildProcess>()
  const start = (port: number) => servers.set(port, spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
    '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' }))
  t.teardown(async () => {
    for (const server of servers.values()) server.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })
  for (const port of ports) start(port)
  for (const port of ports) {
    for (let i = 0; i < 50 && !(await cli(port, 'ping').then(out => out === 'PONG', () => false)); i++) await sleep(100)
  }
  await run('redis-cli', ['--cluster', 'create', ...ports.map(p => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
  for (let i = 0; i < 100 && !(await cli(ports[0], 'cluster', 'info')).includes('cluster_state:ok'); i++) await sleep(100)
  return {
    ports,
    stop (port: number) { servers.get(port)?.kill('SIGKILL') },
    /** How many keys under a prefix each node holds. */
    keysPerNode: (prefix: string) => Promise.all(ports.map(port => run('redis-cli', ['-p', String(port), '--scan', '--pattern', `${prefix}*`]).then(r => r.stdout.split('\n').filter(Boolean).length)))
  }
}

const redisClusterMissing = await run('redis-server', ['--version']).then(() => false, () => 'needs redis-server and redis-cli')

t.test('every shared store on a Redis Cluster: rate limits, lockouts, refresh grace, revocation; a node lost under load', { skip: redisClusterMissing }, async t => {
  const cluster = await ownCluster(t)
  const nodes = cluster.ports.map(port => ({ host: '127.0.0.1', port }))
  const redisKeyPrefix = `test:${randomUUID()}:`
  const options = { redisUrl: undefined, redisClusterNodes: nodes, redisKeyPrefix, trustProxy: true, rateLimitMax: 1000, loginMaxFailures: 3, refreshReuseGraceSec: 30 }
  // Two instances on one cluster: what one counts, the other sees. They share a database only with
  // DATABASE_URL (embedded, each has its own): what needs a user runs on the instance that has it.
  const a = await build(t, options)
  const b = await build(t, options)
  t.equal(a.redis?.isCluster, true, 'a cluster client')
  t.equal(a.redis?.status, 'ready', 'connected')

  await t.test('rate-limit counts land in the cluster, spread over its nodes, shared by instances', async t => {
    const ips = Array.from({ length: 30 }, (_, i) => `10.1.${i}.7`)
    // 150 hits per address (a 401: counted all the same), half on each instance: the first of each
    // window counted in Redis, the rest counted in process and flushed in batches over the nodes.
    for (let round = 0; round < 150; round++) {
      const res = await Promise.all(ips.map(ip => (round % 2 ? b : a).inject({ url: '/api/v1/users/me', headers: { 'x-forwarded-for': ip } })))
      if (res.some(r => r.statusCode !== 401)) { t.fail(`round ${round}: ${res.map(r => r.statusCode).join(',')}`); break }
    }
    // The last batches are sent on the counter's timer: wait for them (a busy machine delays it).
    const countsInCluster = () => Promise.all(ips.map(ip => cli(cluster.ports[0], 'get', `${redisKeyPrefix}rl:api:${ip}`).then(Number)))
    let counts = await countsInCluster()
    for (let i = 0; i < 50 && counts.some(count => count < 150); i++) counts = await sleep(100).then(countsInCluster)
    t.same(counts, ips.map(() => 150), 'every hit of every address is counted in the cluster')
    const perNode = await cluster.keysPerNode(`${redisKeyPrefix}rl:api:`)
    t.ok(perNode.every(n => n > 0), `the keys are spread over all three nodes (${perNode.join(', ')})`)
    t.equal((await a.inject({ url: '/metrics' })).body.match(/^redis_fallback_active (\d)/m)?.[1], '0', 'no fallback')
  })

  await t.test('a small budget: the 429 comes from the shared count', async t => {
    const ip = '10.2.0.1'
    const small = { ...options, rateLimitMax: 5 }
    const c = await build(t, small)
    const d = await build(t, small)
    const statuses = []
    for (let i = 0; i < 6; i++) statuses.push((await (i % 2 ? d : c).inject({ url: '/api/v1/users/me', headers: { 'x-forwarded-for': ip } })).statusCode)
    t.same(statuses, [401, 401, 401, 401, 401, 429], 'five answered across two instances (three each at most), then 429')
    t.equal(await cli(cluster.ports[0], 'get', `${redisKeyPrefix}rl:api:${ip}`), '6', 'every hit counted in the cluster')
  })

  await t.test('lockout: failures counted in the cluster (one script over the account and IP budgets)', async t => {
    const user = await createUser(a)
    const ip = '10.3.0.1'
    const attempt = (app: typeof a, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-forwarded-for': ip }, payload: { email: user.email, password } })
    const failures = [await attempt(a, 'Wrong-Password-1'), await attempt(b, 'Wrong-Password-2'), await attempt(b, 'Wrong-Password-3')]
    t.same(failures.map(r => r.statusCode), [401, 401, 401])
    const locked = await attempt(a, PASSWORD)
    t.equal(locked.statusCode, 429, 'locked by the shared count: this instance saw one failure only, and now refuses even the right password')
    const account = createHash('sha256').update(user.email).digest('base64url')
    t.equal(await cli(cluster.ports[0], 'get', `${redisKeyPrefix}{login-budgets}:login:account:${account}`), '3', 'the account budget in the cluster')
    t.equal(await cli(cluster.ports[0], 'get', `${redisKeyPrefix}{login-budgets}:login:ip:${ip}`), '3', 'the IP budget in the cluster')
  })

  await t.test('refresh grace answer shared through the cluster; revocation', async t => {
    const user = await createUser(a)
    const rotated = await refresh(a, user.refreshToken)
    t.equal(rotated.statusCode, 200)
    const ttl = Number(await cli(cluster.ports[0], 'pttl', `${redisKeyPrefix}refresh-grace:${sha256(user.refreshToken)}`))
    t.ok(ttl > 25_000 && ttl <= 30_000, `the answer is kept in the cluster for the window (pttl ${ttl})`)
    const other = process.env.DATABASE_URL ? b : a
    const replay = await refresh(other, user.refreshToken)
    t.equal(replay.statusCode, 200)
    t.same(replay.json(), rotated.json(), 'a replay within the grace gets the same tokens again')
    // The answer comes from the cluster: without the key there, a replay is reuse.
    const second = await createUser(a)
    t.equal((await refresh(a, second.refreshToken)).statusCode, 200)
    t.equal(await cli(cluster.ports[0], 'del', `${redisKeyPrefix}refresh-grace:${sha256(second.refreshToken)}`), '1')
    const reused = await refresh(a, second.refreshToken)
    t.equal(reused.statusCode, 401, 'with the key deleted in the cluster the replay is refused')
    t.equal(reused.json().error.code, 'TOKEN_REUSED')

    const session = await login(other, user.email, PASSWORD)
    const { token } = session
    t.equal((await as(other, { token }, { url: `/api/v1/users/${user.id}` })).statusCode, 200)
    t.equal((await a.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken: session.refreshToken } })).statusCode, 204)
    // Another instance hears of it by a database notification: at once on the same one, a moment later elsewhere.
    let status = 0
    for (let i = 0; i < 40 && (status = (await as(other, { token }, { url: `/api/v1/users/${user.id}` })).statusCode) !== 401; i++) await sleep(50)
    t.equal(status, 401, 'revoked: the access token of the ended login is refused')
  })

  // Over real HTTP, as clients send it: with app.inject and a path that does no I/O (a 401 counted
  // in process once the node is gone), the load loop would run as one chain of microtasks and
  // starve the test's own timers, which is a property of inject, not of the server.
  await t.test('one node stopped under load: no 5xx, no waiting, limits stay on', async t => {
    const user = await createUser(a)
    const victim = cluster.ports[1]
    // Addresses enough to put keys on every node, the stopped one too; few hits each.
    let sent = 0
    const nextIp = () => `10.4.${sent % 7}.${sent++ % 211}`
    const seen = new Map<number, number>()
    // The slowest answer among requests sent before the node was stopped, and among those sent after.
    const slowest = { before: { max: 0, count: 0 }, after: { max: 0, count: 0 } }
    let killedAt = Infinity
    let unexpected = ''
    const load = { running: true }
    const [urlA, urlB] = await Promise.all([a, b].map(app => app.listen({ port: 0, host: '127.0.0.1' })))
    const send = async (url: string, options: { method?: string, token?: string, body?: unknown } = {}) => {
      const headers: Record<string, string> = { 'x-forwarded-for': nextIp() }
      if (options.token) headers.authorization = `Bearer ${options.token}`
      if (options.body) headers['content-type'] = 'application/json'
      const res = await fetch(url, { method: options.method ?? 'GET', headers, body: options.body ? JSON.stringify(options.body) : undefined })
      return { statusCode: res.status, limited: res.headers.has('x-ratelimit-limit'), body: await res.text() }
    }
    const worker = async (n: number) => {
      while (load.running) {
        const started = Date.now()
        // Logins and reads of the user on a, anonymous reads (401) on b.
        const [res, expected] = n % 4 === 0
          ? [await send(`${urlA}/api/v1/auth/login`, { method: 'POST', body: { email: user.email, password: PASSWORD } }), 200]
          : n % 2
            ? [await send(`${urlA}/api/v1/users/${user.id}`, { token: user.token }), 200]
            : [await send(`${urlB}/api/v1/users/me`), 401]
        const phase = started >= killedAt ? slowest.after : slowest.before
        phase.max = Math.max(phase.max, Date.now() - started)
        phase.count++
        seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
        if (res.statusCode !== expected || !res.limited) unexpected = `${res.statusCode} ${res.body.slice(0, 200)}`
      }
    }
    // How long the event loop stood still at most (a timer every 100 ms that comes late).
    let last = Date.now()
    let blocked = 0
    const drift = setInterval(() => { blocked = Math.max(blocked, Date.now() - last - 100); last = Date.now() }, 100)
    const workers = Array.from({ length: 8 }, (_, n) => worker(n))
    await sleep(1500)
    cluster.stop(victim)
    killedAt = Date.now()
    await sleep(1500)
    const down = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: uniqueEmail('nobody'), password: 'Wrong-Password-9' } })))
    t.same(down.map(r => r.statusCode), down.map(() => 401), 'failed logins answered 401 (counted in process meanwhile)')
    load.running = false
    await Promise.all(workers)
    clearInterval(drift)
    t.equal(unexpected, '', `only the expected answers, all with rate-limit headers (${JSON.stringify(Object.fromEntries(seen))})`)
    // A request that waited for the lost node would take a command timeout (500 ms) or more on top
    // of what the same load took before; the margin is for a machine that is busy with other work.
    const { before, after } = slowest
    t.ok(after.max < before.max + 1000, `no request waited for the lost node (slowest ${after.max} ms after, ${before.max} ms before)`)
    t.ok(blocked < 500, `the event loop kept running (longest stall ${blocked} ms)`)
    t.ok(before.count >= 20 && after.count >= 20, `under load (${before.count} requests before, ${after.count} after)`)

    // The limits stay on: a small budget still refuses past its limit while the node is gone.
    const e = await build(t, { ...options, rateLimitMax: 3 })
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await e.inject({ url: '/api/v1/users/me', headers: { 'x-forwarded-for': '10.5.0.1' } })).statusCode)
    t.same(statuses, [401, 401, 401, 429, 429], 'limits still enforced')
  })
})

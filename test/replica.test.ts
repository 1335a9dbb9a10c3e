import { execFile } from 'node:child_process'
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises'
import { existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import pg from 'pg'
import { lsnValue } from '../src/db/read-routing.js'
import { as, build, createUser, freePort, uniqueEmail, PASSWORD, type TestUser } from './helper.js'

// A real streaming replica of the test's own: a primary initdb'd into a temp directory on its own
// port, a hot standby made from it by pg_basebackup -R on another. Never the machine's shared server.
const run = promisify(execFile)
const PG_BIN = ['/usr/lib/postgresql'].filter(existsSync).flatMap(root => readdirSync(root).map(v => path.join(root, v, 'bin')))
  .find(dir => ['initdb', 'pg_ctl', 'pg_basebackup'].every(bin => existsSync(path.join(dir, bin))))
const skip = !PG_BIN ? 'needs PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) under /usr/lib/postgresql/<version>/bin' : false
// initdb refuses to run as root: the servers run as the postgres user then.
const asPostgres = (command: string, args: string[]) => process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args)
const bin = (name: string) => path.join(PG_BIN!, name)

async function streamingPair (t: { teardown (fn: () => unknown): void }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'replica-pg-'))
  if (process.getuid?.() === 0) await chown(dir, Number((await run('id', ['-u', 'postgres'])).stdout), Number((await run('id', ['-g', 'postgres'])).stdout))
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const primaryData = path.join(dir, 'primary')
  const replicaData = path.join(dir, 'replica')
  await asPostgres(bin('initdb'), ['-D', primaryData, '-U', 'postgres', '--auth=trust', '--no-sync'])
  await appendFile(path.join(primaryData, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n')
  const ctl = (data: string, ...args: string[]) => asPostgres(bin('pg_ctl'), ['-D', data, '-w', ...args])
  const options = (port: number) => `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  await ctl(primaryData, '-l', path.join(dir, 'primary.log'), '-o', `${options(primaryPort)} -c wal_level=replica -c max_wal_senders=5`, 'start')
  const stopAll = async () => {
    await ctl(replicaData, '-m', 'immediate', 'stop').catch(() => {})
    await ctl(primaryData, '-m', 'immediate', 'stop').catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  t.teardown(stopAll)
  // -R: writes standby.signal and primary_conninfo, so the copy starts as a streaming hot standby.
  await asPostgres(bin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replicaData, '-R', '-X', 'stream'])
  const startReplica = () => ctl(replicaData, '-l', path.join(dir, 'replica.log'), '-o', `${options(replicaPort)} -c hot_standby=on`, 'start')
  await startReplica()
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${replicaPort}/postgres`,
    startReplica,
    stopReplica: () => ctl(replicaData, '-m', 'fast', 'stop'),
    stopAll
  }
}

async function connect (t: { teardown (fn: () => unknown): void }, url: string) {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.end().catch(() => {}))
  return client
}

t.test('lag-tolerant reads on a real streaming replica: own writes seen, replica down falls back, writes on the primary', { skip }, async t => {
  const pair = await streamingPair(t)
  const primary = await connect(t, pair.primaryUrl)
  const replica = await connect(t, pair.replicaUrl)
  t.equal((await replica.query('select pg_is_in_recovery() as r')).rows[0].r, true, 'the replica is a standby')

  const primaryPosition = async () => lsnValue((await primary.query('select pg_current_wal_lsn()::text as l')).rows[0].l)
  const replayed = async () => lsnValue((await replica.query('select pg_last_wal_replay_lsn()::text as l')).rows[0].l)
  async function caughtUp () {
    const wanted = await primaryPosition()
    for (let i = 0; i < 100 && await replayed() < wanted; i++) await sleep(50)
    t.ok(await replayed() >= wanted, 'the replica caught up')
  }
  const pause = async () => {
    await replica.query('select pg_wal_replay_pause()')
    for (let i = 0; i < 50 && (await replica.query('select pg_get_wal_replay_pause_state() as s')).rows[0].s !== 'paused'; i++) await sleep(20)
  }
  const resume = () => replica.query('select pg_wal_replay_resume()')

  const app = await build(t, { databaseUrl: pair.primaryUrl, databaseReplicaUrl: pair.replicaUrl })
  const [alice, bob] = [await createUser(app, { roles: ['admin'] }), await createUser(app, { roles: ['admin'] })]
  await caughtUp()

  const readsOn = async (target: string) => {
    const metric = await app.metrics.getSingleMetric('db_lag_tolerant_reads_total')!.get()
    return metric.values.find(v => v.labels.target === target)?.value ?? 0
  }
  const listed = async (caller: TestUser, email: string) => {
    const res = await as(app, caller, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(email)}` })
    t.equal(res.statusCode, 200, `list as ${caller.email}: 200`)
    return (res.json().data as Array<{ email: string }>).some(u => u.email === email)
  }

  await t.test('lists are read on the replica', async t => {
    // Written straight through the service (no request, so no caller's write mark) while replay is paused.
    await pause()
    const marker = uniqueEmail('marker')
    const system = { actor: { id: alice.id, sessionId: null, permissions: new Set(['users:write']) }, actorId: null, ip: null, userAgent: null, requestId: 'test' }
    await app.usersService.create(system, { email: marker, password: PASSWORD, firstName: 'Marker', lastName: 'Row' })
    t.equal((await primary.query('select count(*)::int as n from users where email = $1', [marker])).rows[0].n, 1, 'the row is on the primary')
    const before = await readsOn('replica')
    t.notOk(await listed(bob, marker), 'the list does not show it: it was read on the paused replica')
    t.equal(await readsOn('replica'), before + 1, 'counted as a replica read')
    const onReplica = await replica.query("select count(*)::int as n from pg_stat_activity where application_name = 'user-management-api:replica'")
    t.ok(onReplica.rows[0].n >= 1, 'the app holds connections on the replica')
    const lag = await app.metrics.getSingleMetric('db_replica_lag_bytes')!.get()
    t.ok((lag.values[0]?.value ?? 0) > 0, `db_replica_lag_bytes shows the paused replica behind (${lag.values[0]?.value})`)
    await resume()
    await caughtUp()
    t.ok(await listed(bob, marker), 'shown once the replica has replayed it')
  })

  await t.test('a caller sees its own write at once; another caller reads the replica meanwhile', async t => {
    await pause()
    const email = uniqueEmail('own')
    const created = await as(app, alice, { method: 'POST', url: '/api/v1/users', payload: { email, password: PASSWORD, firstName: 'Own', lastName: 'Write' } })
    t.equal(created.statusCode, 201, 'created (on the primary while the replica is paused)')
    const onPrimary = await readsOn('primary')
    t.ok(await listed(alice, email), 'the creator lists it right away')
    t.equal(await readsOn('primary'), onPrimary + 1, 'its read went to the primary')
    const audit = await as(app, alice, { method: 'GET', url: `/api/v1/audit-logs?userId=${created.json().data.id}` })
    t.equal(audit.statusCode, 200)
    t.ok(audit.json().data.some((e: { action: string }) => e.action === 'user.created'), 'and its audit row')
    const exported = await as(app, alice, { method: 'GET', url: `/api/v1/users/${created.json().data.id}/export` })
    t.equal(exported.statusCode, 200, 'and exports the new user')
    t.notOk(await listed(bob, email), 'another caller reads the (paused) replica: not there yet')
    await resume()
    await caughtUp()
    t.equal((await app.metrics.getSingleMetric('db_replica_up')!.get()).values[0]?.value, 1, 'db_replica_up is 1')
    const onReplica = await readsOn('replica')
    t.ok(await listed(alice, email), 'after replay the creator reads it from the replica')
    t.equal(await readsOn('replica'), onReplica + 1, 'its write is replayed, so the replica serves it again')
    t.ok(await listed(bob, email), 'and so does the other caller')
  })

  await t.test('the replica is read-only; writes all go to the primary', async t => {
    await t.rejects(replica.query("update users set first_name = 'x' where email = $1", [alice.email]), /read-only/, 'a write on the replica would fail')
    const statuses = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const res = await as(app, alice, { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail('w'), password: PASSWORD, firstName: `W${i}`, lastName: 'Primary' } })
      const id = res.json().data?.id
      const patched = await as(app, alice, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { lastName: 'Patched' } })
      return [res.statusCode, patched.statusCode]
    }))
    t.same(statuses.flat().filter(s => s >= 500), [], `no 5xx (${statuses.flat().join(',')})`)
    t.ok(statuses.every(([c, p]) => c === 201 && p === 200), 'every create and patch succeeded')
  })

  await t.test('replica stopped: reads answer 200 from the primary, and go back once it is up', async t => {
    await pair.stopReplica()
    const marker = uniqueEmail('down')
    const write = await as(app, bob, { method: 'POST', url: '/api/v1/users', payload: { email: marker, password: PASSWORD, firstName: 'Down', lastName: 'Replica' } })
    t.equal(write.statusCode, 201, 'writes go on')
    const onPrimary = await readsOn('primary')
    const started = Date.now()
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => as(app, i % 2 ? alice : bob, { method: 'GET', url: `/api/v1/${i % 3 ? 'users' : 'audit-logs'}?limit=5` })))
    t.same(answers.map(r => r.statusCode).filter(s => s !== 200), [], 'every read 200')
    t.ok(Date.now() - started < 3000, `without waiting long (${Date.now() - started} ms)`)
    t.ok(await listed(alice, marker), 'the primary answers: even another caller sees the newest row')
    t.ok(await readsOn('primary') >= onPrimary + 21, 'counted as primary reads')
    t.equal((await app.metrics.getSingleMetric('db_replica_up')!.get()).values[0]?.value, 0, 'db_replica_up is 0 while it is away')
    t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200, 'still ready: the replica is not required')

    await pair.startReplica()
    const restarted = Date.now()
    const onReplica = await readsOn('replica')
    while (Date.now() - restarted < 15_000 && await readsOn('replica') === onReplica) {
      await as(app, bob, { method: 'GET', url: '/api/v1/users?limit=1' })
      await sleep(250)
    }
    t.ok(await readsOn('replica') > onReplica, `reads went back to the replica ${Date.now() - restarted} ms after its restart`)
  })
})

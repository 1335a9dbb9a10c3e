import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { build, freePort, ownDatabase } from './helper.js'

// kill -9 of the service while it writes (issue 14): every write is one transaction, so nothing
// half-written is left, every create it acknowledged is there, and the next start is clean.
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))
const ADMIN = { email: 'kill@example.test', password: 'Correct-Horse-9' }

async function start (t: Test, env: NodeJS.ProcessEnv) {
  const port = await freePort()
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    AUTH_RATE_LIMIT_MAX: '100000',
    RATE_LIMIT_MAX: '100000',
    RATE_LIMIT_USER_MAX: '100000',
    MAX_EVENT_LOOP_DELAY: '0'
  }
  delete childEnv.REDIS_URL
  if (!env.DATABASE_URL) delete childEnv.DATABASE_URL
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SERVER], { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', chunk => { out += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => { child.kill('SIGKILL') })
  const deadline = Date.now() + 90_000
  while (!out.includes('Server listening') && child.exitCode === null && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  const url = `http://127.0.0.1:${port}`
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined
    })
    return { status: res.status, body: await res.json().catch(() => null) as { data?: { id?: string, accessToken?: string } } | null }
  }
  return { child, exited, call, started: () => out.includes('Server listening'), log: () => out }
}

t.test('kill -9 during writes: no partial rows, every acknowledged create kept, the next start is clean', async t => {
  const env = await ownDatabase(t)
  const first = await start(t, env)
  t.ok(first.started(), 'the service started')
  const token = (await first.call('POST', '/api/v1/auth/login', ADMIN)).body?.data?.accessToken
  t.ok(token, 'the admin logged in')
  const tag = randomUUID().slice(0, 8)
  const acknowledged: string[] = []
  const load = { stopped: false }
  let n = 0
  // Each create writes the user, its roles, its profile, its audit row and event, and its
  // verification email job in one transaction.
  const worker = async () => {
    while (!load.stopped) {
      const i = n++
      const res = await first.call('POST', '/api/v1/users', {
        email: `kill-${tag}-${i}@example.test`, password: 'Correct-Horse-9', firstName: 'Kill', lastName: `N${i}`, roles: ['user'], profile: { phone: `+1 555 ${i}`, bio: `bio ${i}` }
      }, token).catch(() => null)
      if (res?.status === 201 && res.body?.data?.id) acknowledged.push(res.body.data.id)
    }
  }
  const workers = Array.from({ length: 8 }, worker)
  const deadline = Date.now() + 30_000
  while (acknowledged.length < 40 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  first.child.kill('SIGKILL')
  load.stopped = true
  await Promise.all(workers)
  t.equal((await first.exited).signal, 'SIGKILL', `killed while creating (${acknowledged.length} creates acknowledged, ${n} sent)`)
  t.ok(acknowledged.length >= 40, 'creates were acknowledged before the kill')

  const second = await start(t, env)
  t.ok(second.started(), 'the next start is clean')
  t.equal((await second.call('GET', '/health/ready')).status, 200, 'and ready')
  const again = (await second.call('POST', '/api/v1/auth/login', ADMIN)).body?.data?.accessToken
  const created = await second.call('POST', '/api/v1/users', { email: `kill-${tag}-after@example.test`, password: 'Correct-Horse-9', firstName: 'After', lastName: 'Kill' }, again)
  t.equal(created.status, 201, 'and takes writes')
  second.child.kill('SIGTERM')
  t.equal((await second.exited).code, 0, 'and stops cleanly')

  const app = await build(t, {}, env)
  const db = app.database.db
  const users = await db.selectFrom('users as u')
    .select(['u.id', 'u.roleNames', 'u.profile'])
    .select(eb => [
      eb.selectFrom('userRoles').select(eb.fn.countAll<number>().as('n')).whereRef('userRoles.userId', '=', 'u.id').as('roles'),
      eb.selectFrom('userProfiles').select(eb.fn.countAll<number>().as('n')).whereRef('userProfiles.userId', '=', 'u.id').as('profiles'),
      eb.selectFrom('userAuditLog').select(eb.fn.countAll<number>().as('n')).whereRef('userAuditLog.userId', '=', 'u.id').where('action', '=', 'user.created').as('audits'),
      eb.selectFrom('events').select(eb.fn.countAll<number>().as('n')).whereRef('events.userId', '=', 'u.id').where('type', '=', 'user.created').as('events')
    ])
    .where('u.email', 'like', `kill-${tag}-%`)
    .where('u.email', 'not like', '%-after@%')
    .execute()
  const ids = new Set(users.map(u => u.id))
  t.ok(acknowledged.every(id => ids.has(id)), `every acknowledged create is there (${acknowledged.length} acknowledged, ${users.length} found)`)
  const partial = users.filter(u => Number(u.roles) !== 1 || Number(u.profiles) !== 1 || Number(u.audits) !== 1 || Number(u.events) !== 1 ||
    JSON.stringify(u.roleNames) !== '["user"]' || u.profile === null)
  t.same(partial, [], 'no user without its roles, profile, read model, audit row or event')
})

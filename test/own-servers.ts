import { execFile, spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from './helper.js'

// A PostgreSQL server and a Redis of a test's own (own data directory and port), never the
// machine's shared ones, for tests that stop, break or run the servers a process talks to.
export const run = promisify(execFile)
const PG_BIN = ['/usr/lib/postgresql'].filter(existsSync).flatMap(root => readdirSync(root).map(v => path.join(root, v, 'bin'))).find(dir => existsSync(path.join(dir, 'initdb')))
/** A skip reason when PostgreSQL's server binaries are missing. */
export const needsPostgres = !PG_BIN ? 'needs PostgreSQL server binaries (initdb, pg_ctl)' : false
// initdb refuses to run as root: the server runs as the postgres user then.
const asPostgres = (command: string, args: string[]) => process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args)

interface Teardown { teardown (fn: () => unknown): void }

/** Trust authentication: any password in the URL is accepted and never checked. */
export async function ownPostgres (t: Teardown) {
  const dir = await mkdtemp(path.join(tmpdir(), 'own-pg-'))
  if (process.getuid?.() === 0) await chown(dir, Number((await run('id', ['-u', 'postgres'])).stdout), Number((await run('id', ['-g', 'postgres'])).stdout))
  const port = await freePort()
  const data = path.join(dir, 'data')
  await asPostgres(path.join(PG_BIN!, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync'])
  const ctl = (...args: string[]) => asPostgres(path.join(PG_BIN!, 'pg_ctl'), ['-D', data, '-w', ...args])
  const start = () => ctl('-l', path.join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start')
  await start()
  t.teardown(async () => {
    await ctl('-m', 'immediate', 'stop').catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, start, stop: () => ctl('-m', 'fast', 'stop') }
}

/** A redis-server on a free port, answering PING before this returns. */
export async function ownRedis (t: Teardown) {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGKILL') })
  for (let i = 0; i < 50 && !(await run('redis-cli', ['-p', String(port), 'ping']).then(r => r.stdout.includes('PONG'), () => false)); i++) await sleep(100)
  return { url: `redis://127.0.0.1:${port}`, port }
}

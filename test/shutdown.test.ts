import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// SIGTERM with requests in flight: the process itself (src/server.ts, as `npm start` runs it
// after the build) finishes them, then exits 0 within its grace delay.
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))

async function freePort () {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

t.test('SIGTERM: in-flight requests finish, then the process exits 0', async t => {
  const port = await freePort()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: 'memory://',
    LOG_LEVEL: 'info',
    ADMIN_EMAIL: 'shutdown@example.test',
    ADMIN_PASSWORD: 'Correct-Horse-9',
    AUTH_RATE_LIMIT_MAX: '1000'
  }
  delete env.DATABASE_URL
  delete env.REDIS_URL
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', chunk => { out += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(() => { child.kill('SIGKILL') })
  const deadline = Date.now() + 60_000
  while (!out.includes('Server listening') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(out.includes('Server listening'), 'started')

  // Logins take an argon2 hash each: twenty of them are still running when the signal arrives.
  const login = () => fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'shutdown@example.test', password: 'Correct-Horse-9' })
  }).then(res => res.status, () => 'failed')
  const inFlight = Array.from({ length: 20 }, login)
  await new Promise(resolve => setTimeout(resolve, 30))
  const signalled = Date.now()
  child.kill('SIGTERM')
  const statuses = await Promise.all(inFlight)
  const code = await exited
  t.same(statuses, Array(20).fill(200), 'every request in flight was answered 200')
  t.equal(code, 0, 'exit code 0')
  t.ok(Date.now() - signalled < 10_000, `exited within the grace delay (${Date.now() - signalled} ms)`)
  t.match(out, /"signal":"SIGTERM".*"msg":"closing"/, 'logged why it closed')
})

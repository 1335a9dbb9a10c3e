import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { freePort, testConfig } from './helper.js'

// SIGTERM with requests in flight: the process itself (src/server.ts, as `npm start` runs it
// after the build) finishes them, then exits 0 within its grace delay.
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))

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
    AUTH_RATE_LIMIT_MAX: '1000',
    // No load shedding: on a busy machine it would answer every login 503 before the signal.
    MAX_EVENT_LOOP_DELAY: '0'
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

  // Logins take an argon2 hash each: once the first is answered the others have all arrived
  // and most are still running when the signal comes.
  const login = () => fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'shutdown@example.test', password: 'Correct-Horse-9' })
  }).then(res => ({ status: res.status, retryAfter: res.headers.get('retry-after'), at: Date.now() }),
    // A connection refused never reached the server (on a loaded machine it may connect after the
    // listener closed): a proxy retries that elsewhere. A reset after it was accepted is a lost request.
    (err: Error & { cause?: { code?: string } }) => ({ status: err.cause?.code === 'ECONNREFUSED' ? 'refused' as const : 0, retryAfter: null, at: Date.now() }))
  const inFlight = Array.from({ length: 20 }, login)
  await Promise.race(inFlight)
  const signalled = Date.now()
  child.kill('SIGTERM')
  const answers = await Promise.all(inFlight)
  const code = await exited
  t.ok(answers.every(a => a.status === 200 || (a.status === 503 && a.retryAfter) || a.status === 'refused'),
    `every request answered, 200 (or 503 with Retry-After, or refused, had it not arrived yet): ${answers.map(a => a.status).join(',')}`)
  t.ok(answers.filter(a => a.status === 200 && a.at > signalled).length > 0, 'requests running at the signal finished with 200')
  t.equal(code, 0, 'exit code 0')
  t.ok(Date.now() - signalled < 10_000, `exited within the grace delay (${Date.now() - signalled} ms)`)
  t.match(out, /"signal":"SIGTERM".*"msg":"closing"/, 'logged why it closed')
})

t.test('a request that arrives while the app is closing is 503 in the envelope, with Retry-After and Connection: close', async t => {
  const app = await buildApp(testConfig())
  let answer: { status: number, headers: Headers, body: string } | undefined
  let readiness: number | undefined
  // The server still listens during preClose hooks; ours, registered first, has begun refusing.
  app.addHook('preClose', async () => {
    const { port } = app.server.address() as AddressInfo
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/health`)
    answer = { status: res.status, headers: res.headers, body: await res.text() }
    readiness = (await fetch(`http://127.0.0.1:${port}/health/ready`)).status
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.close()
  t.equal(answer?.status, 503)
  t.equal(readiness, 503, 'readiness is 503 from the start of the close: a balancer stops sending')
  t.equal(answer?.headers.get('retry-after'), '1', 'Retry-After')
  t.equal(answer?.headers.get('connection'), 'close', 'the client will open a new connection, to another instance')
  const body = JSON.parse(answer?.body ?? '{}')
  t.equal(body.error?.code, 'SERVICE_UNAVAILABLE')
  t.equal(body.error?.requestId, answer?.headers.get('x-request-id'), 'requestId is X-Request-Id')
})

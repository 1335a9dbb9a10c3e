import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { freePort, uniqueEmail, PASSWORD } from './helper.js'
import { needsPostgres, ownPostgres, ownRedis, run } from './own-servers.js'

// The built service (dist/src/start.cjs, as `npm start` and the image run it) as a child process,
// exporting to an OTLP/HTTP receiver of the test's own; and the same service with tracing off.
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ENTRY = path.join(ROOT, 'dist/src/start.cjs')
// The SDK, exporters, instrumentations and their module hooks. @opentelemetry/api itself is not
// among them: prom-client depends on it (it looks for a span to attach to a sample) and loads it
// with or without tracing; off, nothing registers with it (the hook below reports its globals).
const OTEL_MODULE = /\/node_modules\/(@opentelemetry\/(?!api\/)[^/]+|@fastify\/otel|require-in-the-middle|import-in-the-middle)\//

// Preloaded with --require: writes down every module the process loaded, CommonJS ones (from
// require.cache, which holds those imported from ES modules too) at exit and, with
// LOADED_MODULES_ESM set, every ES module import as it is resolved (a module.register hook);
// and, at exit, what is registered with the OpenTelemetry API (tracer provider, propagator...).
const MODULE_LIST_HOOK = `
const { appendFileSync } = require('node:fs')
const out = process.env.LOADED_MODULES_FILE
if (process.env.LOADED_MODULES_ESM) {
  const hooks = \`
    import { appendFileSync } from 'node:fs'
    let out
    export function initialize (file) { out = file }
    export async function resolve (specifier, context, next) {
      const resolved = await next(specifier, context)
      appendFileSync(out, resolved.url + '\\\\n')
      return resolved
    }\`
  require('node:module').register('data:text/javascript,' + encodeURIComponent(hooks), { data: out })
}
process.on('exit', () => {
  const registered = Object.keys(globalThis[Symbol.for('opentelemetry.js.api.1')] ?? {}).filter(key => key !== 'version')
  appendFileSync(out, Object.keys(require.cache).join('\\n') + '\\notel-registered:' + registered.join(',') + '\\n')
})
`

t.setTimeout(300_000)

interface Span {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  scope: string
  attributes: Record<string, unknown>
}
const SERVER = 2 // OTLP's SPAN_KIND_SERVER

interface OtlpValue { stringValue?: string, intValue?: string | number, boolValue?: boolean, doubleValue?: number }
const valueOf = (value: OtlpValue) => value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue
const attributesOf = (list: Array<{ key: string, value: OtlpValue }> = []) => Object.fromEntries(list.map(a => [a.key, valueOf(a.value)]))

/** Accepts POST /v1/traces, OTLP/JSON or protobuf, and keeps every body. */
async function otlpReceiver (t: Test) {
  const received: Array<{ type: string | undefined, body: Buffer }> = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', chunk => chunks.push(chunk))
    req.on('end', () => {
      const ok = req.method === 'POST' && req.url === '/v1/traces'
      if (ok) received.push({ type: req.headers['content-type'], body: Buffer.concat(chunks) })
      res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const json = () => received.map(r => {
    if (r.type !== 'application/json') throw new Error(`a ${r.type} export, not OTLP/JSON`)
    return JSON.parse(r.body.toString())
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    spans: () => json().flatMap(body => body.resourceSpans.flatMap((rs: { scopeSpans: Array<{ scope: { name: string }, spans: Array<Span & { attributes: [] }> }> }) =>
      rs.scopeSpans.flatMap(ss => ss.spans.map(s => ({ ...s, scope: ss.scope.name, attributes: attributesOf(s.attributes) }))))) as Span[],
    serviceNames: () => json().flatMap(body => body.resourceSpans.map((rs: { resource: { attributes: [] } }) => attributesOf(rs.resource.attributes)['service.name']))
  }
}

/** Starts the built service; stop() sends SIGTERM and resolves with the exit code. */
async function startService (t: Test, env: NodeJS.ProcessEnv, hook: string) {
  const port = await freePort()
  // Budgets under 100 are counted in Redis on every request (src/lib/batched-counter.ts): each
  // request sends a command there.
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', RATE_LIMIT_MAX: '90', AUTH_RATE_LIMIT_MAX: '90', ...env }
  for (const name of Object.keys(childEnv)) if (name.startsWith('OTEL_') && !(name in env)) delete childEnv[name]
  // Through env(1): tap adds its own loaders to NODE_OPTIONS of whatever it sees spawned.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--require', hook, ENTRY], { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', chunk => { out += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(() => { child.kill('SIGKILL') })
  const deadline = Date.now() + 90_000
  while (!out.includes('Server listening') && child.exitCode === null && Date.now() < deadline) await sleep(100)
  if (!out.includes('Server listening')) throw new Error(`the service did not start:\n${out}`)
  return {
    url: `http://127.0.0.1:${port}`,
    logLines: () => out.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line) as Record<string, unknown>),
    stop: () => { child.kill('SIGTERM'); return exited }
  }
}

async function signUp (url: string) {
  const email = uniqueEmail('trace')
  const json = { 'content-type': 'application/json' }
  const registered = await fetch(`${url}/api/v1/auth/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD, firstName: 'Bodyfirstname', lastName: 'Bodylastname' }) })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`)
  const login = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) })
  const { data } = await login.json() as { data: { accessToken: string, refreshToken: string } }
  const me = await fetch(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${data.accessToken}` } })
  const { data: { id } } = await me.json() as { data: { id: string } }
  return { email, id, token: data.accessToken, refreshToken: data.refreshToken }
}

const dir = await mkdtemp(path.join(tmpdir(), 'tracing-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const hook = path.join(dir, 'module-list.cjs')
await writeFile(hook, MODULE_LIST_HOOK)
const loadedModules = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean)

// PostgreSQL and Redis: the CI job's when it has them, else the test's own (pg spans need a
// PostgreSQL; the embedded database has no driver to instrument). Ours takes a password in its
// URL (trust authentication ignores it) that must never reach a span.
const DB_PASSWORD = `pw-${randomBytes(6).toString('hex')}`
let databaseUrl = process.env.DATABASE_URL
let redisUrl = process.env.REDIS_URL
t.before(async () => {
  // As `npm run build` compiles the service: the test runs what production runs.
  await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT })
  if (!databaseUrl && !needsPostgres) databaseUrl = (await ownPostgres(t)).url.replace('postgres@', `postgres:${DB_PASSWORD}@`)
  redisUrl ??= (await ownRedis(t)).url
})

t.test('with OTEL_EXPORTER_OTLP_ENDPOINT set: a server span per request, pg and redis child spans, trace ids in the log', { skip: !process.env.DATABASE_URL && needsPostgres }, async t => {
  const receiver = await otlpReceiver(t)
  const modules = path.join(dir, 'traced-modules')
  const service = await startService(t, {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    LOG_LEVEL: 'debug',
    LOADED_MODULES_FILE: modules,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    // Nothing goes out before the service closes: what arrives was flushed by the shutdown.
    OTEL_BSP_SCHEDULE_DELAY: '600000'
  }, hook)
  const user = await signUp(service.url)
  const get = (headers: Record<string, string> = {}) => fetch(`${service.url}/api/v1/users/${user.id}`, { headers: { authorization: `Bearer ${user.token}`, ...headers } })
  const fresh = await get()
  const incoming = { traceId: randomBytes(16).toString('hex'), parentId: randomBytes(8).toString('hex') }
  const continued = await get({ traceparent: `00-${incoming.traceId}-${incoming.parentId}-01` })
  // A search (forbidden to this user, still traced): its value is the email.
  const search = await fetch(`${service.url}/api/v1/users?q=${encodeURIComponent(user.email)}`, { headers: { authorization: `Bearer ${user.token}` } })
  t.equal(fresh.status, 200)
  t.equal(continued.status, 200)
  t.equal(search.status, 403)
  t.equal((await fetch(`${service.url}/health`)).status, 200)
  t.equal(await service.stop(), 0, 'the service closed cleanly')
  t.ok(receiver.received.length > 0, 'the spans batched at shutdown were exported before the process exited')

  const spans = receiver.spans()
  const byId = new Map(spans.map(s => [s.spanId, s]))
  const lines = service.logLines()
  const traceOf = (requestId: string | null) => {
    const ours = lines.filter(line => line.reqId === requestId)
    t.ok(ours.length >= 2, `the request logged its lines (${ours.length})`)
    const traceId = ours[0]?.traceId as string
    t.match(traceId, /^[0-9a-f]{32}$/, 'a trace id in its log')
    t.ok(ours.every(line => line.traceId === traceId && /^[0-9a-f]{16}$/.test(String(line.spanId))), 'the same trace id, and a span id, in every line of the request')
    return traceId
  }
  const checkTrace = (traceId: string) => {
    const servers = spans.filter(s => s.traceId === traceId && s.kind === SERVER)
    t.equal(servers.length, 1, 'one server span for the request')
    const server = servers[0]
    t.equal(server?.name, 'GET /api/v1/users/:id', 'named by the route template')
    t.equal(server?.attributes['http.route'], '/api/v1/users/:id')
    t.equal(server?.attributes['http.response.status_code'], 200)
    const under = (span: Span) => {
      for (let p = byId.get(span.parentSpanId ?? ''); p; p = byId.get(p.parentSpanId ?? '')) if (p === server) return true
      return false
    }
    const pgSpans = spans.filter(s => s.traceId === traceId && s.scope === '@opentelemetry/instrumentation-pg' && s.name.startsWith('pg.query:'))
    t.ok(pgSpans.length > 0 && pgSpans.every(under), `pg query spans under the server span (${pgSpans.map(s => s.name).join(', ')})`)
    t.ok(pgSpans.some(s => /^select /i.test(String(s.attributes['db.query.text']))), 'carrying the statement text')
    const redisSpans = spans.filter(s => s.traceId === traceId && s.scope === '@opentelemetry/instrumentation-ioredis')
    t.ok(redisSpans.length > 0 && redisSpans.every(under), `redis command spans under it (${redisSpans.map(s => s.name).join(', ')})`)
    return server
  }

  checkTrace(traceOf(fresh.headers.get('x-request-id')))
  const continuedTrace = traceOf(continued.headers.get('x-request-id'))
  t.equal(continuedTrace, incoming.traceId, 'the incoming traceparent\'s trace is continued')
  t.equal(checkTrace(continuedTrace)?.parentSpanId, incoming.parentId, 'the server span\'s parent is the caller\'s span')
  t.notOk(spans.some(s => String(s.attributes['url.path']).startsWith('/health')), 'probes are not traced')
  const searches = spans.filter(s => s.attributes['url.path'] === '/api/v1/users')
  t.ok(searches.length === 2 && searches.every(s => s.attributes['url.query'] === 'q=REDACTED'), 'query strings are kept with their values replaced (server and request spans)')
  t.same([...new Set(receiver.serviceNames())], ['user-management-api'], 'service.name defaults to user-management-api')

  // No secret, SQL parameter value, query value or body in any span: the password, the tokens
  // and the Authorization header, the email (a bound value of the login's statements and the
  // search's query), the register body's names, the database password.
  const exported = receiver.received.map(r => r.body.toString()).join('\n')
  for (const [what, secret] of Object.entries({ password: PASSWORD, accessToken: user.token, refreshToken: user.refreshToken, email: user.email, body: 'Bodyfirstname', dbPassword: DB_PASSWORD })) {
    t.notOk(exported.includes(secret), `no ${what} in the exported spans`)
  }
  t.notOk(spans.some(s => Object.keys(s.attributes).some(key => /authorization|cookie|header|db\.query\.parameter|values/i.test(key))), 'no header or parameter attributes')

  // The check below would see OpenTelemetry's modules: here they are loaded.
  const loaded = await loadedModules(modules)
  t.ok(loaded.some(m => OTEL_MODULE.test(m)), 'OpenTelemetry is loaded when tracing is on')
  t.match(loaded.find(m => m.startsWith('otel-registered:')), /trace.*propagation|propagation.*trace/, 'and registered')
})

t.test('with OTEL_EXPORTER_OTLP_ENDPOINT unset no OpenTelemetry SDK, exporter or instrumentation is loaded, and nothing is registered', async t => {
  const modules = path.join(dir, 'untraced-modules')
  const service = await startService(t, { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, DATA_DIR: 'memory://', LOG_LEVEL: 'info', LOADED_MODULES_FILE: modules, LOADED_MODULES_ESM: '1' }, hook)
  const user = await signUp(service.url)
  t.equal((await fetch(`${service.url}/api/v1/users/${user.id}`, { headers: { authorization: `Bearer ${user.token}` } })).status, 200)
  t.equal(await service.stop(), 0)
  const loaded = await loadedModules(modules)
  // Both lists were written: ES imports (the app's own files) and CommonJS modules (fastify's).
  t.ok(loaded.some(m => m.startsWith('file://') && m.endsWith('/src/app.js')), 'the ES module imports were listed')
  t.ok(loaded.some(m => m.includes('/node_modules/fastify/fastify.js')), 'the CommonJS modules were listed')
  t.same(loaded.filter(m => OTEL_MODULE.test(m)), [], 'no OpenTelemetry module')
  t.ok(loaded.includes('otel-registered:'), 'nothing registered with the OpenTelemetry API')
  t.notOk(service.logLines().some(line => 'traceId' in line), 'no trace ids in the log')
})

t.test('OTLP/HTTP protobuf by default; grpc refused at start', async t => {
  const receiver = await otlpReceiver(t)
  const service = await startService(t, { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, DATA_DIR: 'memory://', LOADED_MODULES_FILE: path.join(dir, 'protobuf-modules'), OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, hook)
  const user = await signUp(service.url)
  t.equal((await fetch(`${service.url}/api/v1/users/${user.id}`, { headers: { authorization: `Bearer ${user.token}` } })).status, 200)
  t.equal(await service.stop(), 0)
  t.ok(receiver.received.length > 0 && receiver.received.every(r => r.type === 'application/x-protobuf'), 'protobuf exports')
  // Strings travel as they are in protobuf: the span's name is in the bytes.
  t.ok(receiver.received.some(r => r.body.includes('GET /api/v1/users/:id')), 'carrying the server span')

  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ENTRY], {
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let err = ''
  child.stderr.on('data', chunk => { err += chunk })
  const code = await new Promise(resolve => child.on('exit', resolve))
  t.equal(code, 1, 'grpc: the process stops')
  t.match(err, /OTEL_EXPORTER_OTLP_PROTOCOL must be http\/protobuf or http\/json/, 'saying why')
})

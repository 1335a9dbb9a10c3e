import { createHash, randomUUID } from 'node:crypto'
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path, { join } from 'node:path'
import pg from 'pg'
import { createServer, type AddressInfo } from 'node:net'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm as pgTrgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { Kysely } from 'kysely'
import { assertMigrated, createMigrator } from '../src/db/migrate.js'
import { PGliteDialect } from '../src/db/pglite-dialect.js'
import { createResponseValidator } from './openapi-validator.js'

export const PASSWORD = 'Correct-Horse-9'

/**
 * The embedded database every test app starts from: the migrations applied once to a fresh PGlite
 * and dumped, kept in the temp directory under a hash of the migrations and PGlite's version, so
 * the suite's processes make it once between them (an app still runs the migrator on start: a no-op).
 */
async function embeddedTemplate (): Promise<Blob> {
  const hash = createHash('sha256')
  hash.update(JSON.parse(readFileSync(new URL('../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')).version)
  const migrations = new URL('../db/migrations/', import.meta.url)
  for (const file of readdirSync(migrations).sort()) hash.update(file).update(readFileSync(new URL(file, migrations)))
  const path = join(tmpdir(), `user-management-pglite-${hash.digest('hex').slice(0, 16)}.tar`)
  try {
    return new Blob([readFileSync(path)])
  } catch {}
  const client = new PGlite({ extensions: { pg_trgm: pgTrgm } })
  const db = new Kysely<any>({ dialect: new PGliteDialect(client) })
  assertMigrated(await createMigrator(db).migrateToLatest())
  const dump = await client.dumpDataDir('none')
  await db.destroy()
  // Written under another name first: a process reading it never sees half a file.
  const partial = `${path}.${process.pid}.partial`
  writeFileSync(partial, Buffer.from(await dump.arrayBuffer()))
  renameSync(partial, path)
  return dump
}

const template = process.env.DATABASE_URL ? undefined : await embeddedTemplate()

/**
 * The test configuration: embedded PostgreSQL in memory unless DATABASE_URL names a real
 * server (CI runs the suite both ways), quiet logs, and a cheaper argon2 so the suite is fast.
 */
export function testConfig (overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = {}): Config {
  const config = loadConfig({
    DATA_DIR: 'memory://',
    LOG_LEVEL: 'silent',
    // Generous limits: the rate-limit and lockout tests set their own, other tests log in freely.
    RATE_LIMIT_MAX: '1000000',
    AUTH_RATE_LIMIT_MAX: '1000000',
    RATE_LIMIT_USER_MAX: '1000000',
    LOGIN_IP_MAX_FAILURES: '1000000',
    // No background outbox worker racing the tests; test/email.test.ts drives delivery itself.
    EMAIL_POLL_INTERVAL: '0',
    // No background webhook delivery: a webhook some other test registered (the fuzz test's, with
    // any URL) is never attempted; test/webhooks.test.ts delivers its own webhooks' deliveries itself.
    WEBHOOK_POLL_INTERVAL: '0',
    // No load shedding: a busy test machine must not answer 503 (test/overload.test.ts turns it on).
    MAX_EVENT_LOOP_DELAY: '0',
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    // The suite runs with personal data encrypted at rest too (on a database of its own: a sealed one refuses keyless starts).
    ...(process.env.PII_ENCRYPTION_KEYS ? { PII_ENCRYPTION_KEYS: process.env.PII_ENCRYPTION_KEYS } : {}),
    ...env
  })
  // A Redis key prefix per app, so test files sharing one Redis never share counters.
  return { ...config, argon2MemoryKiB: 1024, redisKeyPrefix: `test:${randomUUID()}:`, embeddedTemplate: template, ...overrides }
}

interface Tap { teardown (fn: () => unknown): void }

/** Builds the app for one test file and closes it when the file ends. */
export async function build (t: Tap, overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = {}): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(overrides, env))
  await app.ready()
  t.teardown(() => app.close())
  return validateResponses(app)
}

/** The body as the client reads it: a compressed answer (Accept-Encoding) decompressed. */
function decoded (res: LightMyRequestResponse): string {
  const encoding = res.headers['content-encoding']
  if (encoding === 'br') return brotliDecompressSync(res.rawPayload).toString()
  if (encoding === 'gzip') return gunzipSync(res.rawPayload).toString()
  return res.body
}

/**
 * Makes every answer of app.inject (the promise form) be checked against the app's own OpenAPI
 * document: an answer off the document rejects, so the test that made the request fails.
 */
export function validateResponses (app: FastifyInstance): FastifyInstance {
  const check = createResponseValidator(app.swagger())
  const inject = app.inject.bind(app)
  app.inject = ((options?: InjectOptions | string, callback?: unknown) => {
    if (options === undefined || callback) return (inject as any)(options, callback)
    return inject(options).then(res => {
      // The router-refused URLs are routed again under another url; originalUrl is what the client sent.
      const req = res.raw.req as typeof res.raw.req & { originalUrl?: string }
      const answer = { method: req.method ?? 'GET', url: req.originalUrl ?? req.url ?? '/', statusCode: res.statusCode, headers: res.headers, body: decoded(res) }
      const problems = check(answer)
      if (problems.length) {
        throw new Error(`${answer.method} ${answer.url} answered ${answer.statusCode} off the OpenAPI document:\n  ${problems.join('\n  ')}\n  body: ${answer.body.slice(0, 500)}`)
      }
      return res
    })
  }) as typeof app.inject
  return app
}

export const uniqueEmail = (tag = 'user') => `${tag}-${randomUUID().slice(0, 12)}@example.test`

export interface TestUser { id: string, email: string, password: string, token: string, refreshToken: string }

/** Creates a user straight through the service (roles included) and logs it in over HTTP. */
export async function createUser (app: FastifyInstance, options: { roles?: string[], email?: string, password?: string, firstName?: string, lastName?: string } = {}): Promise<TestUser> {
  const email = options.email ?? uniqueEmail(options.roles?.join('-') ?? 'user')
  const password = options.password ?? PASSWORD
  const system = { actor: { id: randomUUID(), sessionId: null, permissions: new Set(['users:write', 'roles:manage']) }, actorId: null, ip: null, userAgent: null, requestId: 'test' }
  const user = await app.usersService.create(system, {
    email, password, firstName: options.firstName ?? 'Test', lastName: options.lastName ?? 'User', roles: options.roles ?? ['user']
  })
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  const { accessToken, refreshToken } = res.json().data
  return { id: user.id, email, password, token: accessToken, refreshToken }
}

/** app.inject with a bearer token. */
export function as (app: FastifyInstance, user: { token: string } | undefined, options: InjectOptions) {
  return app.inject({ ...options, headers: { ...(user ? { authorization: `Bearer ${user.token}` } : {}), ...options.headers } })
}

/** Asserts the contract's error envelope: status, code, a message, and requestId equal to X-Request-Id. */
export function assertError (t: Test, res: LightMyRequestResponse, status: number, code: string, message = `${status} ${code}`) {
  if (!t.equal(res.statusCode, status, `${message}: status`)) t.ok(false, `${message}: body was ${res.body.slice(0, 500)}`)
  t.ok(String(res.headers['content-type']).startsWith('application/json'), `${message}: JSON`)
  const body = res.json()
  t.equal(body.success, false, `${message}: success false`)
  t.equal(body.error?.code, code, `${message}: code`)
  t.equal(typeof body.error?.message, 'string', `${message}: a message`)
  t.equal(body.error?.requestId, res.headers['x-request-id'], `${message}: requestId is X-Request-Id`)
  return body.error as { code: string, message: string, details?: Array<{ field?: string, message: string }>, requestId: string }
}

/**
 * A throw-away PostgreSQL database beside DATABASE_URL's, dropped when the test ends; its URL
 * (undefined when the suite runs embedded).
 */
export async function ownPostgresDatabase (t: Tap): Promise<string | undefined> {
  if (!process.env.DATABASE_URL) return undefined
  const base = new URL(process.env.DATABASE_URL)
  const name = `test_${randomUUID().replaceAll('-', '').slice(0, 12)}`
  // A connection per statement: one held open would keep the process alive past the tests.
  const run = async (statement: string) => {
    const admin = new pg.Client({ connectionString: base.toString() })
    await admin.connect()
    try { await admin.query(statement) } finally { await admin.end() }
  }
  await run(`create database ${name}`)
  t.teardown(() => run(`drop database if exists ${name} with (force)`))
  const url = new URL(base)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * A database of the test's own, for apps built one after another on the same data (each closed
 * before the next): a new PostgreSQL database beside DATABASE_URL's, or an embedded one in a
 * temporary directory. Resolves to the environment that points an app at it.
 */
export async function ownDatabase (t: Tap): Promise<NodeJS.ProcessEnv> {
  const databaseUrl = await ownPostgresDatabase(t)
  if (databaseUrl) return { DATABASE_URL: databaseUrl }
  const dir = await mkdtemp(path.join(tmpdir(), 'test-db-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return { DATA_DIR: dir }
}

/** A loopback port nothing listens on now, for a server a test starts itself. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

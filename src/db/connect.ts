import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { Kysely, PostgresDialect, sql, type LogEvent } from 'kysely'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Database } from './types.js'
import { PGliteDialect } from './pglite-dialect.js'
import { RowsCamelCasePlugin } from './camel-case.js'
import { createPiiKeyring } from '../lib/secret-box.js'
import { CompiledQueries, PLANNED_PER_CALL_MARK } from './compiled-queries.js'
import { FUZZY_WORD_SIMILARITY } from '../lib/search-query.js'

export type DB = Kysely<Database>

export interface Listener {
  /** Called with each notification's payload. */
  onMessage (payload: string): void
  /** Called with false when notifications may have been missed (connection lost), true once listening again. */
  onListening (listening: boolean): void
}

export interface DatabaseHandle {
  db: DB
  /** This database's compiled hot statements (repositories run them through it). */
  compiled: CompiledQueries
  kind: 'postgres' | 'embedded'
  ping (): Promise<void>
  /** LISTEN on a channel for as long as the handle is open. */
  listen (channel: string, listener: Listener): Promise<void>
  /** The PostgreSQL pool's connections and the queries queued for one (none: the embedded database has no pool). */
  poolStats?: () => { open: number, idle: number, waiting: number }
  close (): Promise<void>
}

// int8 (count(*), bigint) as a JS number: every count we return is far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, value => Number(value))

/**
 * Kysely sends every query unnamed, so PostgreSQL parses and plans it anew each time. Naming
 * each parameterised statement by its text makes every connection prepare it once and then only
 * bind and execute. (Parameterless SQL, such as migration files, stays unnamed: it may hold
 * several statements.)
 */
function createStatementNamer () {
  const names = new Map<string, string | undefined>()
  return function statementName (text: string) {
    let name = names.get(text)
    if (name === undefined && !names.has(text)) {
      name = text.includes(PLANNED_PER_CALL_MARK) ? undefined : `k${createHash('sha1').update(text).digest('hex').slice(0, 24)}`
      if (names.size < 5000) names.set(text, name)
    }
    return name
  }
}

function preparedStatements (client: pg.PoolClient, statementName: (text: string) => string | undefined) {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((text: unknown, values?: unknown, callback?: unknown) => {
    if (typeof text !== 'string' || !Array.isArray(values) || values.length === 0) return query(text, values, callback)
    const name = statementName(text)
    return name ? query({ name, text, values }, callback) : query(text, values, callback)
  }) as typeof client.query
}

/** The row plugin of a database handle: camelCase names and, with PII_ENCRYPTION_KEYS, the opening of personal data. */
function rowPlugin (config: Config) {
  return new RowsCamelCasePlugin(config.piiKeys.length > 0 ? createPiiKeyring(config.piiKeys) : undefined)
}

/** Times each statement, Kysely's and the compiled ones alike. */
export type QueryObserver = (sql: string, seconds: number) => void

/** A pg pool whose clients prepare each parameterised statement once, with the compiled hot statements going straight to it. */
function connectPool (url: string, config: Config, log: FastifyBaseLogger, observeQuery: QueryObserver, pool: { applicationName: string, connectionTimeoutMs: number }) {
  const camelCase = rowPlugin(config)
  const logQuery = (event: LogEvent) => observeQuery(event.query.sql, event.queryDurationMillis / 1000)
  const statementName = createStatementNamer()
  const clients = new pg.Pool({
    connectionString: url,
    max: config.dbPoolSize,
    connectionTimeoutMillis: pool.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: config.dbStatementTimeoutMs,
    idle_in_transaction_session_timeout: 60_000,
    application_name: pool.applicationName,
    // A fuzzy search word's `<%` (trigram word similarity) reads its threshold from the session.
    options: `-c pg_trgm.word_similarity_threshold=${FUZZY_WORD_SIMILARITY}`
  })
  // An idle client that loses its server (database restart) emits here; without a
  // listener that error would crash the process. The pool replaces the client.
  clients.on('error', err => log.warn({ err, pool: pool.applicationName }, 'database connection lost'))
  // A connection can also die while checked out; the pool drops it on release, but the
  // client's own 'error' event needs a listener or it would crash the process.
  clients.on('connect', client => {
    client.on('error', err => log.warn({ err, pool: pool.applicationName }, 'database connection lost'))
    preparedStatements(client, statementName)
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: clients }), plugins: [camelCase], log: logQuery })
  const compiled = new CompiledQueries(async (text, parameters) => {
    const name = parameters.length > 0 ? statementName(text) : undefined
    const started = performance.now()
    try {
      const { fields, rows } = await clients.query<unknown[]>({ name, text, values: parameters as unknown[], rowMode: 'array' })
      return { rows: camelCase.rowsFromArrays(fields.map(field => field.name), rows) }
    } finally {
      observeQuery(text, (performance.now() - started) / 1000)
    }
  })
  const poolStats = () => ({ open: clients.totalCount, idle: clients.idleCount, waiting: clients.waitingCount })
  return { db, compiled, poolStats }
}

/** A read-only standby (DATABASE_REPLICA_URL): only lag-tolerant reads go there (see read-routing.ts). */
export interface ReplicaHandle {
  db: DB
  compiled: CompiledQueries
  close (): Promise<void>
}

export function connectReplica (url: string, config: Config, log: FastifyBaseLogger, observeQuery: QueryObserver = () => {}): ReplicaHandle {
  // A short connect timeout: while the replica is unreachable its reads go to the primary instead.
  const { db, compiled } = connectPool(url, config, log, observeQuery, { applicationName: 'user-management-api:replica', connectionTimeoutMs: 2000 })
  return { db, compiled, close: () => db.destroy() }
}

export async function connectDatabase (config: Config, log: FastifyBaseLogger, observeQuery: QueryObserver = () => {}): Promise<DatabaseHandle> {
  if (config.databaseUrl) {
    const { db, compiled, poolStats } = connectPool(config.databaseUrl, config, log, observeQuery, { applicationName: 'user-management-api', connectionTimeoutMs: 5000 })
    const listeners = new Set<pg.Client>()
    let closing = false

    async function listen (channel: string, listener: Listener) {
      let retryMs = 250
      const connect = async (): Promise<void> => {
        if (closing) return
        const client = new pg.Client({ connectionString: config.databaseUrl, application_name: 'user-management-api:listen' })
        let lost = false
        const onLost = (err?: Error) => {
          if (lost) return
          lost = true
          listeners.delete(client)
          client.end().catch(() => {})
          if (closing) return
          if (err) log.warn({ err, channel }, 'database notifications lost; reconnecting')
          listener.onListening(false)
          setTimeout(() => { connect().catch(() => {}) }, retryMs).unref()
          retryMs = Math.min(retryMs * 2, 10_000)
        }
        client.on('error', onLost)
        client.on('end', () => onLost())
        client.on('notification', message => listener.onMessage(message.payload ?? ''))
        try {
          await client.connect()
          await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
        } catch (err) {
          onLost(err as Error)
          return
        }
        listeners.add(client)
        retryMs = 250
        listener.onListening(true)
      }
      await connect()
    }

    return {
      db,
      compiled,
      kind: 'postgres',
      ping: async () => { await sql`select 1`.execute(db) },
      listen,
      poolStats,
      close: async () => {
        closing = true
        await Promise.all([...listeners].map(client => client.end().catch(() => {})))
        await db.destroy()
      }
    }
  }

  const camelCase = rowPlugin(config)
  const logQuery = (event: LogEvent) => observeQuery(event.query.sql, event.queryDurationMillis / 1000)
  const { PGlite } = await import('@electric-sql/pglite')
  const { pg_trgm: pgTrgm } = await import('@electric-sql/pglite/contrib/pg_trgm')
  const inMemory = config.dataDir === 'memory://' || config.dataDir === ':memory:'
  if (!inMemory) await mkdir(config.dataDir, { recursive: true })
  const client = new PGlite({
    dataDir: inMemory ? undefined : config.dataDir,
    loadDataDir: inMemory ? config.embeddedTemplate : undefined,
    extensions: { pg_trgm: pgTrgm }
  })
  // As for the pool above: the session's threshold for a fuzzy search word's `<%`.
  await client.exec(`set pg_trgm.word_similarity_threshold = ${FUZZY_WORD_SIMILARITY}`)
  const db = new Kysely<Database>({ dialect: new PGliteDialect(client), plugins: [camelCase], log: logQuery })
  return {
    db,
    compiled: new CompiledQueries(),
    kind: 'embedded',
    ping: async () => { await sql`select 1`.execute(db) },
    // One process owns the embedded database, so nothing is ever missed.
    listen: async (channel, listener) => {
      await client.listen(channel, payload => listener.onMessage(payload))
      listener.onListening(true)
    },
    close: () => db.destroy()
  }
}

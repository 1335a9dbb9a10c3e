import { mkdir } from 'node:fs/promises'
import { CamelCasePlugin, Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Database } from './types.js'
import { PGliteDialect } from './pglite-dialect.js'

export type DB = Kysely<Database>

export interface DatabaseHandle {
  db: DB
  kind: 'postgres' | 'embedded'
  ping (): Promise<void>
  close (): Promise<void>
}

// int8 (count(*), bigint) as a JS number: every count we return is far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, value => Number(value))

export async function connectDatabase (config: Config, log: FastifyBaseLogger): Promise<DatabaseHandle> {
  const plugins = [new CamelCasePlugin()]
  if (config.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: config.databaseUrl,
      max: config.dbPoolSize,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: config.dbStatementTimeoutMs,
      idle_in_transaction_session_timeout: 60_000,
      application_name: 'user-management-api'
    })
    // An idle client that loses its server (database restart) emits here; without a
    // listener that error would crash the process. The pool replaces the client.
    pool.on('error', err => log.warn({ err }, 'database connection lost'))
    // A connection can also die while checked out; the pool drops it on release, but the
    // client's own 'error' event needs a listener or it would crash the process.
    pool.on('connect', client => { client.on('error', err => log.warn({ err }, 'database connection lost')) })
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins })
    return {
      db,
      kind: 'postgres',
      ping: async () => { await sql`select 1`.execute(db) },
      close: () => db.destroy()
    }
  }

  const { PGlite } = await import('@electric-sql/pglite')
  const { pg_trgm: pgTrgm } = await import('@electric-sql/pglite/contrib/pg_trgm')
  const inMemory = config.dataDir === 'memory://' || config.dataDir === ':memory:'
  if (!inMemory) await mkdir(config.dataDir, { recursive: true })
  const client = new PGlite({ dataDir: inMemory ? undefined : config.dataDir, extensions: { pg_trgm: pgTrgm } })
  const db = new Kysely<Database>({ dialect: new PGliteDialect(client), plugins })
  return {
    db,
    kind: 'embedded',
    ping: async () => { await sql`select 1`.execute(db) },
    close: () => db.destroy()
  }
}

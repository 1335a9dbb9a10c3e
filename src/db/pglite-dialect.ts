import {
  CompiledQuery, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type TransactionSettings
} from 'kysely'
import type { PGlite } from '@electric-sql/pglite'

// Kept instead of kysely-pglite-dialect 1.3.1: it sends every statement through PGlite.query() (extended protocol), which rejects a migration file's several statements ("cannot insert multiple commands into a prepared statement").
/**
 * Kysely dialect for embedded PostgreSQL (PGlite). PGlite is a single connection, so
 * connections are handed out one at a time. Parameterless raw SQL (migration files) goes
 * through exec(), which accepts several statements; everything else is a prepared query.
 */
export class PGliteDialect implements Dialect {
  constructor (private readonly pglite: PGlite) {}
  createAdapter () { return new PostgresAdapter() }
  createDriver (): Driver { return new PGliteDriver(this.pglite) }
  createQueryCompiler () { return new PostgresQueryCompiler() }
  createIntrospector (db: Kysely<any>) { return new PostgresIntrospector(db) }
}

class PGliteConnection implements DatabaseConnection {
  constructor (private readonly client: PGlite) {}

  async executeQuery<R> (query: CompiledQuery): Promise<QueryResult<R>> {
    if (query.parameters.length === 0 && query.query.kind === 'RawNode') {
      const results = await this.client.exec(query.sql)
      const last = results[results.length - 1]
      return { rows: (last?.rows ?? []) as R[], numAffectedRows: last?.affectedRows !== undefined ? BigInt(last.affectedRows) : undefined }
    }
    const result = await this.client.query<R>(query.sql, [...query.parameters])
    return { rows: result.rows, numAffectedRows: result.affectedRows !== undefined ? BigInt(result.affectedRows) : undefined }
  }

  async * streamQuery<R> (): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported on the embedded database')
  }
}

class PGliteDriver implements Driver {
  private readonly connection: PGliteConnection
  private busy = false
  private readonly waiting: Array<() => void> = []

  constructor (private readonly client: PGlite) {
    this.connection = new PGliteConnection(client)
  }

  async init () { await this.client.waitReady }

  async acquireConnection (): Promise<DatabaseConnection> {
    if (this.busy) await new Promise<void>(resolve => this.waiting.push(resolve))
    this.busy = true
    return this.connection
  }

  async releaseConnection () {
    const next = this.waiting.shift()
    if (next) next()
    else this.busy = false
  }

  async beginTransaction (conn: DatabaseConnection, settings: TransactionSettings) {
    const level = settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : ''
    await conn.executeQuery(CompiledQuery.raw(`begin${level}`))
  }

  async commitTransaction (conn: DatabaseConnection) { await conn.executeQuery(CompiledQuery.raw('commit')) }
  async rollbackTransaction (conn: DatabaseConnection) { await conn.executeQuery(CompiledQuery.raw('rollback')) }
  async destroy () { if (!this.client.closed) await this.client.close() }
}

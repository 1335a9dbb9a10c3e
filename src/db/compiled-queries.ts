import { sql, type Compilable, type CompiledQuery, type QueryResult } from 'kysely'
import type { Executor } from './types.js'

/**
 * Marks a statement that PostgreSQL must plan for each call's values, not once for all: a search
 * (trigram patterns) whose generic plan walks the created_at index and filters every row (at
 * 1,000,000 users a fuzzy search took 700 ms prepared, 21 ms planned for its values). Such a
 * statement is sent unnamed (src/db/connect.ts); `select ${PLANNED_PER_CALL} ...` via modifyFront.
 */
export const PLANNED_PER_CALL_MARK = '/* planned per call */'
export const PLANNED_PER_CALL = sql.raw(PLANNED_PER_CALL_MARK)

/** Runs a compiled statement on the database driver itself. */
export type DirectRunner = (sql: string, parameters: readonly unknown[]) => Promise<QueryResult<unknown>>

/**
 * Kysely builds and compiles a query on every call (tens of µs for the wide user queries). On hot
 * paths a query is compiled once per shape (the SQL text depends only on it) and later calls only
 * bind their parameters. The caller lists the parameters in the order they appear in the SQL; the
 * first compile of each shape checks that list against Kysely's own, so a wrong order fails at once.
 *
 * With a direct runner (the PostgreSQL pool), statements run outside a transaction go straight to
 * the driver, past Kysely's executor (connection provider, driver and plugin layers, each an
 * await): refresh-only bench runs, service/floor CPU per request 1.41 before, about 1.2 after.
 * One instance per database handle, so two apps in one process never share statements.
 */
export class CompiledQueries {
  private readonly byShape = new Map<string, CompiledQuery>()

  constructor (private readonly direct?: DirectRunner, private readonly maxShapes = 500) {}

  async run<R> (db: Executor, shape: string, parameters: readonly unknown[], build: () => Compilable<R>): Promise<QueryResult<R>> {
    let compiled = this.byShape.get(shape) as CompiledQuery<R> | undefined
    if (!compiled) {
      compiled = build().compile()
      if (JSON.stringify(compiled.parameters) !== JSON.stringify(parameters)) {
        throw new Error(`compiled query "${shape}": the parameters given do not match the query's`)
      }
      if (this.byShape.size < this.maxShapes) this.byShape.set(shape, compiled)
    }
    if (this.direct && !db.isTransaction) return this.direct(compiled.sql, parameters) as Promise<QueryResult<R>>
    return db.executeQuery<R>({ ...compiled, parameters })
  }
}

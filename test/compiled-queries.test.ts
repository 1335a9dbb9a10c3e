import {
  DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type QueryResult
} from 'kysely'
import t from 'tap'
import { CompiledQueries } from '../src/db/compiled-queries.js'
import type { Database } from '../src/db/types.js'
import { RowsCamelCasePlugin } from '../src/db/camel-case.js'

// A database that compiles real PostgreSQL and answers every statement through Kysely with no rows.
const database = () => new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: db => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler()
  },
  plugins: [new RowsCamelCasePlugin()]
})

const byId = (db: Kysely<Database>, id: string) => () => db.selectFrom('users').select(['id', 'firstName']).where('id', '=', id)

t.test('compiles a shape once and binds each call to it', async t => {
  const db = database()
  const calls: Array<[string, readonly unknown[]]> = []
  const compiled = new CompiledQueries(async (sql, parameters) => {
    calls.push([sql, parameters])
    return { rows: [{ id: parameters[0], firstName: 'Ada' }] } as QueryResult<unknown>
  })
  const first = await compiled.run(db, 'byId', ['a'], byId(db, 'a'))
  const second = await compiled.run(db, 'byId', ['b'], byId(db, 'b'))
  t.same(first.rows, [{ id: 'a', firstName: 'Ada' }])
  t.same(second.rows, [{ id: 'b', firstName: 'Ada' }])
  t.equal(calls.length, 2, 'both went to the direct runner')
  t.equal(calls[0][0], 'select "id", "first_name" from "users" where "id" = $1')
  t.equal(calls[1][0], calls[0][0])
  t.same(calls.map(([, parameters]) => parameters), [['a'], ['b']])
})

t.test('a transaction keeps to its own connection, through Kysely', async t => {
  const db = database()
  let direct = 0
  const compiled = new CompiledQueries(async () => { direct++; return { rows: [{ id: 'x' }] } })
  const result = await db.transaction().execute(trx => compiled.run(trx, 'byId', ['a'], byId(trx, 'a')))
  t.same(result.rows, [], 'answered by the transaction (the dummy driver has no rows)')
  t.equal(direct, 0)
})

t.test('without a direct runner Kysely executes the statement (the embedded database)', async t => {
  const db = database()
  const result = await new CompiledQueries().run(db, 'byId', ['a'], byId(db, 'a'))
  t.same(result.rows, [])
})

t.test('parameters listed out of order fail on the first compile', async t => {
  const db = database()
  await t.rejects(
    new CompiledQueries().run(db, 'two', ['b', 'a'], () => db.selectFrom('users').select('id').where('id', '=', 'a').where('email', '=', 'b')),
    /parameters given do not match/
  )
})

import { randomUUID } from 'node:crypto'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { GENERATED_TYPES_FILE, generateDatabaseTypes, typesOf } from '../src/db/codegen.js'
import { assertMigrated, createMigrator, MIGRATIONS_DIR } from '../src/db/migrate.js'

const STALE = 'src/db/generated.ts is stale: run `npm run db:types` and commit it'

// Runs in both modes: the types are generated from the migrations applied to a fresh in-memory
// embedded database, whatever DATABASE_URL says.
t.test('the committed table types are what the migrations generate', async t => {
  const committed = await readFile(GENERATED_TYPES_FILE, 'utf8')
  t.ok(await generateDatabaseTypes() === committed, STALE)
})

t.test('a new migration changes the generated types (the check above can fail)', async t => {
  const dir = await mkdtemp(path.join(tmpdir(), 'db-types-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(MIGRATIONS_DIR, dir, { recursive: true })
  await writeFile(path.join(dir, '999_drift.up.sql'), 'ALTER TABLE users ADD COLUMN nickname text;\n')
  await writeFile(path.join(dir, '999_drift.down.sql'), 'ALTER TABLE users DROP COLUMN nickname;\n')
  const drifted = await generateDatabaseTypes(dir)
  t.match(drifted, /\n {2}nickname: string \| null;\n/)
  t.not(drifted, await readFile(GENERATED_TYPES_FILE, 'utf8'))
})

t.test('PostgreSQL itself gives the same types as the embedded database', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL (CI runs it against the local PostgreSQL)' }, async t => {
  const admin = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await admin.connect()
  const name = `db_types_${randomUUID().slice(0, 8)}`
  await admin.query(`create database ${name}`)
  const url = new URL(process.env.DATABASE_URL!); url.pathname = `/${name}`
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
  // The forced drop below ends any connection still open; that is not a failure of this test.
  pool.on('error', () => {})
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
  t.teardown(async () => {
    await db.destroy()
    await admin.query(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  assertMigrated(await createMigrator(db).migrateToLatest())
  t.ok(await typesOf(db) === await readFile(GENERATED_TYPES_FILE, 'utf8'), STALE)
})

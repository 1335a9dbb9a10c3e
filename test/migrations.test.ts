import { randomUUID } from 'node:crypto'
import t from 'tap'
import pino from 'pino'
import { sql, NO_MIGRATIONS } from 'kysely'
import { connectDatabase } from '../src/db/connect.js'
import { assertMigrated, createMigrator } from '../src/db/migrate.js'
import { testConfig } from './helper.js'

const log = pino({ level: 'silent' })

t.test('migrations go up, all the way down, and up again (embedded)', async t => {
  const database = await connectDatabase(testConfig({ databaseUrl: undefined, embeddedTemplate: undefined }), log)
  t.teardown(() => database.close())
  const migrator = createMigrator(database.db)
  t.ok(assertMigrated(await migrator.migrateToLatest()).length >= 1)
  const tables = async () => (await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = 'public'`.execute(database.db)).rows.map(r => r.name)
  for (const table of ['users', 'user_profiles', 'roles', 'user_roles', 'user_audit_log', 'refresh_tokens', 'password_reset_tokens', 'email_verification_tokens', 'email_outbox']) {
    t.ok((await tables()).includes(table), `${table} exists`)
  }
  assertMigrated(await migrator.migrateTo(NO_MIGRATIONS))
  t.notOk((await tables()).includes('users'), 'down removes the tables')
  assertMigrated(await migrator.migrateToLatest())
  t.ok((await tables()).includes('users'), 'up again')
})

t.test('two instances starting at once on an empty database migrate it once', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL (CI runs it against the local PostgreSQL)' }, async t => {
  const base = new URL(process.env.DATABASE_URL!)
  const name = `migrate_race_${randomUUID().slice(0, 8)}`
  const admin = await connectDatabase(testConfig({ databaseUrl: base.toString() }), log)
  await sql.raw(`create database ${name}`).execute(admin.db)
  t.teardown(async () => {
    await sql.raw(`drop database if exists ${name} with (force)`).execute(admin.db)
    await admin.close()
  })
  const url = new URL(base); url.pathname = `/${name}`
  const instances = await Promise.all([1, 2, 3].map(() => connectDatabase(testConfig({ databaseUrl: url.toString() }), log)))
  t.teardown(() => Promise.all(instances.map(i => i.close())))
  const results = await Promise.all(instances.map(i => createMigrator(i.db).migrateToLatest()))
  const applied = results.map(r => assertMigrated(r).filter(m => m.status === 'Success').length)
  const total = (await createMigrator(instances[0].db).getMigrations()).length
  t.equal(applied.reduce((a, b) => a + b, 0), total, 'each migration ran exactly once across the instances')
  const roles = await sql<{ n: number }>`select count(*)::int as n from roles where built_in`.execute(instances[0].db)
  t.equal(roles.rows[0].n, 2, 'seed rows inserted once')
})

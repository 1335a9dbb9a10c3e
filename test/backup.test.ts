import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { as, createUser, testConfig } from './helper.js'

const run = promisify(execFile)
const BACKUP = fileURLToPath(new URL('../deploy/backup/backup.sh', import.meta.url))
const RESTORE = fileURLToPath(new URL('../deploy/backup/restore.sh', import.meta.url))
const skip = process.env.DATABASE_URL ? false : 'pg_dump needs a PostgreSQL server (CI runs it with DATABASE_URL)'

/** Every table of the service's schemas, each as its row count and an md5 of its rows in a stable order. */
async function fingerprint (url: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: tables } = await client.query(`select table_schema, table_name from information_schema.tables
      where table_schema in ('public', 'pgboss') and table_type = 'BASE TABLE' order by 1, 2`)
    const result: Record<string, { rows: number, md5: string }> = {}
    for (const { table_schema: schema, table_name: name } of tables) {
      const table = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`
      const { rows: [row] } = await client.query(`select count(*)::int as rows, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from ${table} t`)
      result[`${schema}.${name}`] = row
    }
    return result
  } finally {
    await client.end()
  }
}

t.test('a backup restores into a fresh database with every row', { skip }, async t => {
  const base = new URL(process.env.DATABASE_URL!)
  const suffix = randomUUID().slice(0, 8)
  const [source, target] = [`backup_src_${suffix}`, `backup_dst_${suffix}`]
  const admin = new pg.Client({ connectionString: base.toString() })
  await admin.connect()
  const urlOf = (name: string) => { const url = new URL(base); url.pathname = `/${name}`; return url.toString() }
  const dir = await mkdtemp(path.join(tmpdir(), 'backup-'))
  t.teardown(async () => {
    for (const name of [source, target]) await admin.query(`drop database if exists ${name} with (force)`)
    await admin.end()
    await rm(dir, { recursive: true, force: true })
  })
  await admin.query(`create database ${source}`)
  await admin.query(`create database ${target}`)

  // Data through the service: users, roles, profiles, sessions, audit rows, queued emails and jobs.
  const app = await buildApp(testConfig({ databaseUrl: urlOf(source) }))
  await app.ready()
  const owner = await createUser(app, { roles: ['admin'] })
  for (let i = 0; i < 5; i++) {
    const user = await createUser(app)
    await as(app, owner, { method: 'PATCH', url: `/api/v1/users/${user.id}/profile`, payload: { bio: `bio ${i} ✓` } })
  }
  await as(app, owner, { method: 'POST', url: '/api/v1/roles', payload: { name: `auditor-${suffix}`, permissions: ['audit:read'] } })
  await app.close()
  const before = await fingerprint(urlOf(source))
  t.ok(before['public.users'].rows >= 6 && before['public.user_audit_log'].rows > 0 && before['pgboss.job'].rows > 0, 'the source has data in every kind of table')

  // Retention: a dump older than 30 days goes, a younger one stays.
  const old = path.join(dir, 'user-management-20200101T000000Z.dump')
  const recent = path.join(dir, 'user-management-20200102T000000Z.dump')
  for (const [file, days] of [[old, 31], [recent, 29]] as const) {
    await writeFile(file, 'x')
    const when = new Date(Date.now() - days * 86_400_000)
    await utimes(file, when, when)
  }
  const env = { ...process.env, DATABASE_URL: urlOf(source), BACKUP_DIR: dir }
  const backup = await run('bash', [BACKUP], { env })
  t.match(backup.stdout, /backup written: /)
  const files = (await readdir(dir)).sort()
  t.notOk(files.includes(path.basename(old)), 'the 31-day-old dump was removed')
  t.ok(files.includes(path.basename(recent)), 'the 29-day-old dump was kept')
  const dump = files.find(f => f !== path.basename(recent) && f.endsWith('.dump'))
  t.ok(dump, 'the new dump is there')
  t.notOk(files.some(f => f.endsWith('.partial')), 'no partial file left')

  await run('bash', [RESTORE, path.join(dir, dump!)], { env: { ...process.env, DATABASE_URL: urlOf(target) } })
  t.same(await fingerprint(urlOf(target)), before, 'every table, with the same rows')

  // The restored database serves: the service starts on it and the admin can log in.
  const restored = await buildApp(testConfig({ databaseUrl: urlOf(target) }))
  await restored.ready()
  t.teardown(() => restored.close())
  const login = await restored.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: owner.email, password: owner.password } })
  t.equal(login.statusCode, 200, 'a login against the restored database')

  await t.rejects(run('bash', [RESTORE, path.join(dir, dump!)], { env: { ...process.env, DATABASE_URL: urlOf(target) } }), 'a restore into a database that is not empty fails instead of mixing data')
})

import { CamelCasePlugin, Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { assertMigrated, createMigrator } from '../../src/db/migrate.js'
import { createPasswordHasher } from '../../src/lib/password.js'

/** Every seeded user has this password; one argon2id hash (the service's parameters) is shared by all rows. */
export const SEED_PASSWORD = 'Bench-Password-1'
export const seedEmail = (n: number) => `bench-${n}@example.test`

export interface BenchDatabase {
  url: string
  name: string
  /** Adds seeded users until there are `target` of them (ids 1..target); returns how long it took. */
  growTo (target: number): Promise<number>
  seeded: number
  /**
   * One ended login (a revoked session and its spent refresh token) for each seeded user, so the
   * login tables have the size and statistics of a system with that many users; returns ms.
   */
  seedEndedLogins (): Promise<number>
  /** Random ids among the seeded users, for get_user. */
  sampleIds (count: number): Promise<string[]>
  /** Random seeded emails, for login. */
  sampleEmails (count: number): Promise<string[]>
  drop (): Promise<void>
}

function withDatabase (serverUrl: string, database: string) {
  const url = new URL(serverUrl)
  url.pathname = `/${database}`
  return url.toString()
}

/**
 * A fresh database on the given server (bench_<timestamp>), migrated with the service's own
 * migrator, and seeded in bulk by SQL: generate_series rows, one precomputed hash, role `user`.
 * An A/B run's other build gets one of its own, migrated by that build (`migrate`): a build
 * refuses a database that a newer one has migrated.
 */
export async function createBenchDatabase (serverUrl: string, options: { name?: string, migrate?: (url: string) => Promise<void> } = {}): Promise<BenchDatabase> {
  const name = options.name ?? `bench_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${process.pid}`
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') })
  await admin.connect()
  try {
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(serverUrl, name)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }), plugins: [new CamelCasePlugin()] })
  if (options.migrate) await options.migrate(url)
  else assertMigrated(await createMigrator(db).migrateToLatest())
  const passwordHash = await createPasswordHasher().hash(SEED_PASSWORD)

  const bench: BenchDatabase = {
    url,
    name,
    seeded: 0,
    async growTo (target) {
      const started = performance.now()
      // Bounded batches keep each statement's memory and WAL modest, even on the way to 1M. The
      // read model's role_names is written with the row, so the role trigger finds it current and
      // rewrites nothing: the table is as compact as one grown by single creates and vacuumed.
      for (let from = bench.seeded + 1; from <= target; from += 250_000) {
        const to = Math.min(target, from + 249_999)
        await sql`
          with inserted as (
            insert into users (email, password_hash, first_name, last_name, status, email_verified, role_names, created_at, updated_at)
            select 'bench-' || g || '@example.test', ${passwordHash}, 'First' || g, 'Last' || g, 'active', true, '{user}',
                   timestamptz '2025-01-01T00:00:00Z' + g * interval '1 second',
                   timestamptz '2025-01-01T00:00:00Z' + g * interval '1 second'
            from generate_series(${from}::int, ${to}::int) g
            returning id
          )
          insert into user_roles (user_id, role_id)
          select id, (select id from roles where name = 'user') from inserted`.execute(db)
        bench.seeded = to
      }
      await sql`vacuum (analyze)`.execute(db)
      // Seeding dirtied the whole table: flush it now rather than in the checkpoints that would
      // otherwise land in the measured rounds (the 1M step swung widely without this).
      await sql`checkpoint`.execute(db)
      return performance.now() - started
    },
    async seedEndedLogins () {
      const started = performance.now()
      await sql`
        with sessions as (
          insert into user_sessions (user_id, user_agent, ip, created_at, last_used_at, expires_at, revoked_at)
          select id, 'bench-seed', '127.0.0.1', created_at, created_at, created_at + interval '7 days', created_at + interval '1 hour'
          from users where email like 'bench-%'
          returning id, user_id, created_at
        )
        insert into refresh_tokens (session_id, user_id, token_hash, created_at, expires_at, spent_at)
        select id, user_id, md5(id::text) || md5(user_id::text), created_at, created_at + interval '7 days', created_at + interval '1 hour'
        from sessions`.execute(db)
      await sql`vacuum (analyze) user_sessions, refresh_tokens`.execute(db)
      return performance.now() - started
    },
    async sampleIds (count) {
      const { rows } = await sql<{ id: string }>`select id from users where email like 'bench-%' order by random() limit ${count}`.execute(db)
      return rows.map(r => r.id)
    },
    async sampleEmails (count) {
      return Array.from({ length: count }, () => seedEmail(1 + Math.floor(Math.random() * bench.seeded)))
    },
    async drop () {
      await db.destroy()
      const client = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') })
      await client.connect()
      try {
        await client.query(`drop database if exists "${name}" with (force)`)
      } finally {
        await client.end()
      }
    }
  }
  return bench
}

// The databases of the two outside baselines: the lean floor (its own denormalized schema,
// bench/lean/schema.sql) and the peer (the seed's stack, tables made by Sequelize's sync). Each gets
// its own database next to the service's, seeded with the same users (same emails, names, times and
// password) so that every server answers the same requests with the same amount of data.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { SEED_PASSWORD } from './database.js'

export interface SeededDatabase {
  url: string
  name: string
  seeded: number
  growTo (target: number): Promise<number>
  seedEndedLogins (): Promise<number>
  sampleIds (count: number): Promise<string[]>
  drop (): Promise<void>
}

export const BASELINE_ADMIN_EMAIL = 'bench-admin@example.test'

function withDatabase (serverUrl: string, database: string) {
  const url = new URL(serverUrl)
  url.pathname = `/${database}`
  return url.toString()
}

async function onServer (serverUrl: string, sql: string) {
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') })
  await client.connect()
  try { await client.query(sql) } finally { await client.end() }
}

/** The seeded users' rows, as every seeding here writes them (the service's seeding in database.ts writes the same). */
const SEED_ROWS = (from: number, to: number) => `
  select 'bench-' || g || '@example.test' as email, 'First' || g as first_name, 'Last' || g as last_name,
         timestamptz '2025-01-01T00:00:00Z' + g * interval '1 second' as at
  from generate_series(${from}::int, ${to}::int) g`

interface Layout {
  /** Creates the tables in the fresh database. */
  setup (client: pg.PoolClient, url: string): Promise<void>
  /** Inserts users from..to (and their role rows) with the given hash. */
  insertUsers (client: pg.PoolClient, from: number, to: number, hash: string): Promise<void>
  insertAdmin (client: pg.PoolClient, hash: string): Promise<void>
  endedLogins: string
  tokenTables: string
}

async function createDatabase (serverUrl: string, name: string, layout: Layout, hash: string): Promise<SeededDatabase> {
  await onServer(serverUrl, `create database "${name}"`)
  const url = withDatabase(serverUrl, name)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  const client = await pool.connect()
  try {
    await layout.setup(client, url)
    await layout.insertAdmin(client, hash)
  } finally {
    client.release()
  }
  const db: SeededDatabase = {
    url,
    name,
    seeded: 0,
    async growTo (target) {
      const started = performance.now()
      const c = await pool.connect()
      try {
        for (let from = db.seeded + 1; from <= target; from += 250_000) {
          const to = Math.min(target, from + 249_999)
          await layout.insertUsers(c, from, to, hash)
          db.seeded = to
        }
        await c.query('vacuum (analyze)')
        await c.query('checkpoint') // as for the service's database (bench/lib/database.ts)
      } finally {
        c.release()
      }
      return performance.now() - started
    },
    async seedEndedLogins () {
      const started = performance.now()
      await pool.query(layout.endedLogins)
      await pool.query(`vacuum (analyze) ${layout.tokenTables}`)
      return performance.now() - started
    },
    async sampleIds (count) {
      const { rows } = await pool.query<{ id: string }>("select id from users where email like 'bench-%' and email <> $1 order by random() limit $2", [BASELINE_ADMIN_EMAIL, count])
      return rows.map(r => r.id)
    },
    async drop () {
      await pool.end()
      await onServer(serverUrl, `drop database if exists "${name}" with (force)`)
    }
  }
  return db
}

const LEAN_SCHEMA = fileURLToPath(new URL('../lean/schema.sql', import.meta.url))

/** The lean floor's database: one users table with roles text[] and profile jsonb. */
export function createLeanDatabase (serverUrl: string, name: string, argon2Hash: string) {
  return createDatabase(serverUrl, name, {
    async setup (client) { await client.query(readFileSync(LEAN_SCHEMA, 'utf8')) },
    async insertUsers (client, from, to, hash) {
      await client.query(`insert into users (email, password_hash, first_name, last_name, status, email_verified, roles, created_at, updated_at)
        select email, $1, first_name, last_name, 'active', true, '{user}', at, at from (${SEED_ROWS(from, to)}) s`, [hash])
    },
    async insertAdmin (client, hash) {
      await client.query("insert into users (email, password_hash, first_name, last_name, status, email_verified, roles) values ($1, $2, 'Bench', 'Admin', 'active', true, '{admin}')", [BASELINE_ADMIN_EMAIL, hash])
    },
    endedLogins: `with s as (
        insert into sessions (user_id, created_at, expires_at, revoked_at)
        select id, created_at, created_at + interval '7 days', created_at + interval '1 hour' from users where email like 'bench-%'
        returning id, user_id, created_at
      )
      insert into refresh_tokens (token_hash, session_id, user_id, expires_at, spent_at)
      select md5(id::text) || md5(user_id::text), id, user_id, created_at + interval '7 days', created_at + interval '1 hour' from s`,
    tokenTables: 'sessions, refresh_tokens'
  }, argon2Hash)
}

export const PEER_DIR = fileURLToPath(new URL('../peer/', import.meta.url))

/** npm ci in bench/peer on first use, so the main project's install stays free of the peer's stack. */
export function ensurePeerInstalled () {
  if (existsSync(path.join(PEER_DIR, 'node_modules', 'sequelize'))) return
  console.log('installing the peer\'s dependencies (npm ci --prefix bench/peer)...')
  execFileSync('npm', ['ci', '--prefix', PEER_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' })
}

/** One bcrypt hash (cost 10, the seed's BCRYPT_ROUNDS) of the seed password, made with the peer's own bcrypt. */
export function peerPasswordHash () {
  return execFileSync(process.execPath, ['-e', "require('bcrypt').hash(process.argv[1], 10).then(h => process.stdout.write(h))", SEED_PASSWORD], { cwd: PEER_DIR, encoding: 'utf8' })
}

/** The peer's database: the seed's tables as its Sequelize models define them (users, user_profiles, roles, user_roles, ...). */
export function createPeerDatabase (serverUrl: string, name: string, bcryptHash: string) {
  const insertUsers = (select: string) => `with u as (
      insert into users (id, email, password_hash, first_name, last_name, status, email_verified, created_at, updated_at)
      ${select}
      returning id
    )
    insert into user_roles (user_id, role_id) select id, (select id from roles where name = $2) from u`
  return createDatabase(serverUrl, name, {
    async setup (_client, url) {
      execFileSync(process.execPath, [path.join(PEER_DIR, 'src', 'sync.js')], { env: { ...process.env, DATABASE_URL: url }, stdio: 'inherit' })
    },
    async insertUsers (client, from, to, hash) {
      await client.query(insertUsers(`select gen_random_uuid(), email, $1, first_name, last_name, 'active', true, at, at from (${SEED_ROWS(from, to)}) s`), [hash, 'user'])
    },
    async insertAdmin (client, hash) {
      await client.query(insertUsers(`select gen_random_uuid(), '${BASELINE_ADMIN_EMAIL}', $1, 'Bench', 'Admin', 'active', true, now(), now()`), [hash, 'admin'])
    },
    endedLogins: `with s as (
        insert into user_sessions (id, user_id, user_agent, ip, created_at, updated_at, last_used_at, expires_at, revoked_at)
        select gen_random_uuid(), id, 'bench-seed', '127.0.0.1', created_at, created_at, created_at, created_at + interval '7 days', created_at + interval '1 hour'
        from users where email like 'bench-%'
        returning id, user_id, created_at
      )
      insert into refresh_tokens (id, token_hash, session_id, user_id, created_at, updated_at, expires_at, spent_at)
      select gen_random_uuid(), md5(id::text) || md5(user_id::text), id, user_id, created_at, created_at, created_at + interval '7 days', created_at + interval '1 hour' from s`,
    tokenTables: 'user_sessions, refresh_tokens'
  }, bcryptHash)
}

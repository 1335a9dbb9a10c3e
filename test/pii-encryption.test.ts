import t, { type Test } from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { createServer as createHttpServer } from 'node:http'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { as, build, createUser, ownDatabase, PASSWORD, type TestUser } from './helper.js'

// Personal data at rest (CONTRACT.md "Privacy and retention", PII_ENCRYPTION_KEYS): profile phone
// and bio, and the ip and user agent of logins and audit rows, never in clear in any table while
// the API, the webhooks and the search still give and find them; and nothing of it without keys.

const keyOf = () => randomBytes(32).toString('base64')

/** Every text-like column of every table (any schema of the application's), with how often each value occurs in it. */
async function scan (app: FastifyInstance, values: string[]) {
  const db = app.database.db
  const { rows: columns } = await sql<{ schema: string, table: string, column: string, type: string }>`
    select c.table_schema as schema, c.table_name as table, c.column_name as column, c.data_type as type
    from information_schema.columns c join information_schema.tables tb on tb.table_schema = c.table_schema and tb.table_name = c.table_name
    where tb.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema')
      and c.data_type in ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'ARRAY')`.execute(db)
  const found: string[] = []
  for (const { schema, table, column, type } of columns) {
    const ref = sql.ref(`${schema}.${table}.${column}`)
    for (const value of values) {
      const match = type === 'bytea'
        ? sql<boolean>`position(convert_to(${value}, 'UTF8') in ${ref}) > 0`
        : sql<boolean>`strpos(${ref}::text, ${value}) > 0`
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(`${schema}.${table}`)} where ${match}`.execute(db)
      if (rows[0].n > 0) found.push(`${schema}.${table}.${column} holds ${JSON.stringify(value)}`)
    }
  }
  return { found, columns: columns.length }
}

/** A webhook receiver on loopback: the bodies it was sent. */
async function receiver (t: Test) {
  const bodies: string[] = []
  const server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', chunk => { body += chunk })
    req.on('end', () => { bodies.push(body); res.end('ok') })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return { url: `http://localhost:${(server.address() as AddressInfo).port}/hook`, bodies }
}

/**
 * The same story on an app with or without keys: a user with a profile created (idempotently),
 * logged in from a known address and browser, its profile changed, a webhook told; then what the
 * API answers, what the receiver got, and what the tables hold.
 */
async function story (t: Test, encrypted: boolean) {
  const env = await ownDatabase(t)
  const app = await build(t, { accessAuditFlushMs: 20 }, { ...env, WEBHOOK_ALLOW_PRIVATE: 'true', AUDIT_DATA_ACCESS: 'true', PII_ENCRYPTION_KEYS: encrypted ? `k1:${keyOf()}` : '' })
  const admin = await createUser(app, { roles: ['admin'] })
  const tag = randomUUID().replaceAll('-', '').slice(0, 10)
  const digits = String(Date.now()).slice(-7)
  const phone = `+1 (555) ${digits.slice(0, 3)}-${digits.slice(3)}`
  const phone2 = `+44 20 ${digits.slice(0, 4)} ${digits.slice(4)}`
  const bio = `bio-secret-${tag}`
  const bio2 = `bio-changed-${tag}`
  const ip = '198.51.100.77'
  const userAgent = `pii-agent/${tag}`
  const client = { remoteAddress: ip, headers: { 'user-agent': userAgent } }
  const hook = await receiver(t)
  const registered = await as(app, admin, { method: 'POST', url: '/api/v1/webhooks', payload: { url: hook.url, events: ['user.updated'] } })
  t.equal(registered.statusCode, 201, 'webhook registered')

  const email = `pii-${tag}@example.test`
  const create = () => app.inject({
    method: 'POST',
    url: '/api/v1/users',
    ...client,
    headers: { ...client.headers, authorization: `Bearer ${admin.token}`, 'idempotency-key': `create-${tag}` },
    payload: { email, password: PASSWORD, firstName: 'Pia', lastName: 'Private', profile: { phone, bio } }
  })
  const created = await create()
  t.equal(created.statusCode, 201, 'created')
  const id: string = created.json().data.id
  t.same(created.json().data.profile, { phone, bio, avatarUrl: null, locale: null, timezone: null }, 'the answer holds the clear profile')
  const replayed = await create()
  t.same(replayed.json().data.profile, created.json().data.profile, 'an idempotent replay answers the clear profile too')

  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', ...client, payload: { email, password: PASSWORD } })
  t.equal(login.statusCode, 200, 'logged in')
  const user: TestUser = { id, email, password: PASSWORD, token: login.json().data.accessToken, refreshToken: login.json().data.refreshToken }
  t.equal(login.json().data.user.profile.phone, phone, 'the login answers the clear phone')

  const patched = await app.inject({ method: 'PATCH', url: `/api/v1/users/${id}/profile`, ...client, headers: { ...client.headers, authorization: `Bearer ${user.token}` }, payload: { phone: phone2, bio: bio2 } })
  t.equal(patched.statusCode, 200, 'profile changed')
  const got = await as(app, user, { method: 'GET', url: `/api/v1/users/${id}` })
  t.same([got.json().data.profile.phone, got.json().data.profile.bio], [phone2, bio2], 'GET answers the clear values')

  const listed = await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(`email:${tag}`)}` })
  t.same(listed.json().data.map((u: { profile: { bio: string } }) => u.profile.bio), [bio2], 'a list page answers them')

  const sessions = await as(app, user, { method: 'GET', url: '/api/v1/auth/sessions' })
  const session = sessions.json().data.find((s: { ip: string }) => s.ip === ip)
  t.equal(session?.userAgent, userAgent, 'the session answers its clear ip and user agent')

  const audit = await as(app, admin, { method: 'GET', url: `/api/v1/audit-logs?userId=${id}&action=user.updated` })
  const entry = audit.json().data[0]
  t.same([entry?.ip, entry?.userAgent, entry?.changes?.profile?.to?.phone, entry?.changes?.profile?.from?.bio], [ip, userAgent, phone2, bio], 'the audit trail answers clear ip, user agent and changes')

  // A read of another user's record (AUDIT_DATA_ACCESS): its user.viewed row is written later, in a batch, with the reader's ip and user agent.
  const viewed = await app.inject({ method: 'GET', url: `/api/v1/users/${id}`, ...client, headers: { ...client.headers, authorization: `Bearer ${admin.token}` } })
  t.equal(viewed.statusCode, 200, 'an admin reads the user')
  let view: { ip?: string, userAgent?: string } | undefined
  for (let i = 0; i < 200 && !view; i++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    view = (await as(app, admin, { method: 'GET', url: `/api/v1/audit-logs?userId=${id}&action=user.viewed` })).json().data[0]
  }
  t.same([view?.ip, view?.userAgent], [ip, userAgent], 'the batched user.viewed row answers clear ip and user agent')

  const exported = await as(app, user, { method: 'GET', url: `/api/v1/users/${id}/export` })
  t.ok(exported.body.includes(bio2) && exported.body.includes(userAgent), 'the export holds them in clear')

  await app.webhooksService.deliverPending(registered.json().data.id)
  const payload = hook.bodies.map(body => JSON.parse(body)).find(body => body.data.userId === id)
  t.same([payload?.data.user.profile.phone, payload?.data.changes.profile.to.bio], [phone2, bio2], 'the webhook carries the clear values')

  const { found, columns } = await scan(app, [phone, phone2, bio, bio2, ip, userAgent])
  t.ok(columns > 50, `${columns} columns scanned`)
  return { app, found, phone, phone2, tag, admin, ip }
}

t.test('with PII_ENCRYPTION_KEYS: nothing in clear at rest, everything clear in the API', async t => {
  const { app, found, phone, phone2, tag, admin } = await story(t, true)
  t.same(found, [], 'no table holds a phone, bio, ip or user agent in clear')

  const search = async (term: string) => {
    const res = await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(`${term} email:${tag}`)}` })
    t.equal(res.statusCode, 200, term)
    return res.json().data.length
  }
  t.equal(await search(`phone:"${phone2}"`), 1, 'phone: finds the whole number')
  t.equal(await search(`phone:${phone2.replace(/\D/g, '')}`), 1, 'written as digits only too')
  t.equal(await search(`phone:"${phone}"`), 0, 'not the number it had before')
  t.equal(await search(`phone:${phone2.replace(/\D/g, '').slice(0, 6)}`), 0, 'no substring match while sealed')
  t.equal(await search('name:private'), 1, 'names stay searchable')
})

t.test('without keys (the default): stored as given, found by substring', async t => {
  const { app, found, phone2, tag, admin, ip } = await story(t, false)
  t.ok(found.some(f => f.startsWith('public.user_profiles.phone')), 'the profile phone is in clear')
  t.ok(found.some(f => f.startsWith('public.user_sessions.ip') && f.includes(ip)), 'the session ip is in clear')
  const res = await as(app, admin, { method: 'GET', url: `/api/v1/users?q=${encodeURIComponent(`phone:"${phone2.slice(-6)}" email:${tag}`)}` })
  t.equal(res.json().data.length, 1, 'phone: matches a substring')
})

t.test('start-up refuses a malformed key, a missing key and a wrong key, naming PII_ENCRYPTION_KEYS', async t => {
  const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, DATA_DIR: 'memory://', PII_ENCRYPTION_KEYS: 'k1:tooShort', LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 60_000
  })
  t.equal(cli.status, 1, 'the process exits 1 on a malformed key')
  t.match(cli.stderr, /Configuration error: PII_ENCRYPTION_KEYS: entry 1 is not kid:base64key/, 'with a message naming the variable')
  t.notMatch(cli.stderr, /tooShort/, 'never echoing the key')

  const env = await ownDatabase(t)
  const keyA = keyOf()
  const first = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: `a:${keyA}` })
  const user = await createUser(first)
  await as(first, user, { method: 'PUT', url: `/api/v1/users/${user.id}/profile`, payload: { bio: 'sealed under a' } })
  await first.close()

  // A refused start never becomes an app to close: Redis, connected before the check, would stay
  // open (the process exits there), so these starts go without it.
  const refused = (keys?: string) => build(t, { redisUrl: undefined }, { ...env, PII_ENCRYPTION_KEYS: keys ?? '' })
  await t.rejects(refused(), { name: 'ConfigError', message: /PII_ENCRYPTION_KEYS is not set, but this database holds personal data sealed under key id\(s\) "a"/ }, 'no keys while sealed data exists')
  await t.rejects(refused(`b:${keyOf()}`), { name: 'ConfigError', message: /PII_ENCRYPTION_KEYS lacks key id\(s\) "a"/ }, 'a keyring without the key id in use')
  await t.rejects(refused(`a:${keyOf()}`), { name: 'ConfigError', message: /PII_ENCRYPTION_KEYS: the key given for id\(s\) "a" is not the key/ }, 'another key under the same id')
  await t.rejects(refused(`a:${keyA},a:${keyOf()}`), { name: 'ConfigError', message: /"a" is given twice/ }, 'a key id twice')

  const again = await build(t, {}, { ...env, PII_ENCRYPTION_KEYS: `a:${keyA}` })
  const res = await as(again, { token: (await again.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password: PASSWORD } })).json().data.accessToken }, { method: 'GET', url: `/api/v1/users/${user.id}/profile` })
  t.equal(res.json().data.bio, 'sealed under a', 'the right key reads it back')
})

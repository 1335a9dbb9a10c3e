import t from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { legacy, PW } from './legacy-hashes.js'

const app = await build(t)
const db = app.database.db
const admin = await createUser(app, { roles: ['admin'] })
// users:write without roles:manage.
const writerRole = `importer-${randomUUID().slice(0, 8)}`
await as(app, admin, { method: 'POST', url: '/api/v1/roles', payload: { name: writerRole, description: 'imports', permissions: ['users:write'] } })
const writer = await createUser(app, { roles: [writerRole] })

const entry = (extra: Record<string, unknown> = {}): Record<string, unknown> & { email: string } => ({ email: uniqueEmail('import'), firstName: 'Imported', lastName: 'Person', ...extra })
const importUsers = (caller: { token: string }, users: unknown[], onConflict?: string) =>
  as(app, caller, { method: 'POST', url: '/api/v1/users/import', payload: { users, ...(onConflict ? { onConflict } : {}) } })
const login = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })
const stored = (email: string) => db.selectFrom('users').selectAll().where('email', '=', email.toLowerCase()).where('deletedAt', 'is', null).executeTakeFirst()
const dataOf = (res: { statusCode: number, body: string, json: () => any }) => {
  if (res.statusCode !== 200) throw new Error(`import answered ${res.statusCode}: ${res.body}`)
  return res.json().data as { created: number, updated: number, skipped: number, failed: Array<{ index: number, error: { code: string, details?: Array<{ field?: string }> } }> }
}

t.test('every legacy hash kind is kept as it is, then logs in with the original password and is rehashed', async t => {
  const kinds = Object.entries(legacy)
  const entries = await Promise.all(kinds.map(async ([, make]) => entry({ passwordHash: await make(PW) })))
  const res = await importUsers(admin, entries)
  t.same(dataOf(res), { created: kinds.length, updated: 0, skipped: 0, failed: [] })
  for (const [i, [name]] of kinds.entries()) {
    const row = await stored(entries[i].email)
    t.equal(row?.passwordHash, entries[i].passwordHash, `${name}: stored as it is (not hashed again)`)
    t.equal((await login(entries[i].email, PW + 'x')).statusCode, 401, `${name}: a wrong password is refused`)
    const ok = await login(entries[i].email, PW)
    t.equal(ok.statusCode, 200, `${name}: logs in with the original password`)
    t.match((await stored(entries[i].email))?.passwordHash, /^\$argon2id\$v=19\$m=1024,/, `${name}: rehashed with the current argon2id`)
  }
})

t.test('a plain password goes through the policy and the hasher', async t => {
  const good = entry({ password: PASSWORD })
  const res = await importUsers(admin, [good, entry({ password: 'weak' }), entry(), entry({ password: PASSWORD, passwordHash: await legacy.bcrypt2b(PW) }), entry({ passwordHash: '$2b$04$short' })])
  const data = dataOf(res)
  t.equal(data.created, 1)
  t.same(data.failed.map(f => [f.index, f.error.code, f.error.details?.[0].field]), [
    [1, 'VALIDATION_ERROR', 'password'],
    [2, 'VALIDATION_ERROR', 'password'],
    [3, 'VALIDATION_ERROR', 'password'],
    [4, 'VALIDATION_ERROR', 'passwordHash']
  ], 'failed entries are listed with their index')
  t.match((await stored(good.email))?.passwordHash, /^\$argon2id\$/)
  t.equal((await login(good.email, PASSWORD)).statusCode, 200)
})

t.test('roles, status, profile, emailVerified and createdAt; an audit row per user', async t => {
  const full = entry({
    passwordHash: await legacy.pbkdf2(PW),
    roles: ['admin', 'user'],
    status: 'suspended',
    emailVerified: true,
    profile: { bio: 'Carried over', locale: 'en-GB' },
    createdAt: '2020-01-02T03:04:05.678Z'
  })
  const plain = entry({ passwordHash: await legacy.bcrypt2y(PW) })
  const res = await importUsers(admin, [full, plain, entry({ passwordHash: await legacy.bcrypt2a(PW), roles: ['no-such-role'] })])
  const data = dataOf(res)
  t.equal(data.created, 2)
  t.same(data.failed.map(f => [f.index, f.error.code]), [[2, 'VALIDATION_ERROR']], 'an unknown role fails its entry')
  const row = await stored(full.email)
  t.match(row, { status: 'suspended', emailVerified: true, roleNames: ['admin', 'user'], profile: { bio: 'Carried over', locale: 'en-GB', phone: null } })
  t.equal(row?.createdAt.toISOString(), '2020-01-02T03:04:05.678Z')
  const fetched = await as(app, admin, { method: 'GET', url: `/api/v1/users/${row!.id}` })
  t.match(fetched.json().data, { roles: ['admin', 'user'], status: 'suspended', profile: { bio: 'Carried over' } })
  const plainRow = await stored(plain.email)
  t.match(plainRow, { status: 'active', emailVerified: false, roleNames: ['user'], profile: null })

  const trail = await db.selectFrom('userAuditLog').select(['action', 'userId', 'actorId', 'changes']).where('requestId', '=', res.headers['x-request-id'] as string).orderBy('seq').execute()
  t.same(trail.map(a => [a.action, a.userId, a.actorId]), [['user.created', row!.id, admin.id], ['user.created', plainRow!.id, admin.id]])
  t.same(trail[0].changes, { email: full.email.toLowerCase(), firstName: 'Imported', lastName: 'Person', status: 'suspended', roles: ['admin', 'user'], imported: true })
  t.notMatch(JSON.stringify(trail), /pbkdf2|\$2y\$/, 'no hash in the audit trail')
  const outbox = await db.selectFrom('emailOutbox').select('id').where('toAddress', 'in', [full.email.toLowerCase(), plain.email.toLowerCase()]).execute()
  t.same(outbox, [], 'no verification email is queued')
})

t.test('onConflict: fail, skip and update', async t => {
  const holder = await createUser(app)
  const again = entry({ email: holder.email.toUpperCase(), firstName: 'Changed', passwordHash: await legacy.scrypt(PW), status: 'active' })

  const failing = dataOf(await importUsers(admin, [entry({ password: PASSWORD }), again]))
  t.equal(failing.created, 1)
  t.same(failing.failed.map(f => [f.index, f.error.code]), [[1, 'EMAIL_TAKEN']], 'fail (the default) lists it')
  t.equal((await stored(holder.email))?.firstName, 'Test', 'and leaves the user alone')

  const twice = entry({ password: PASSWORD })
  const dup = dataOf(await importUsers(admin, [twice, { ...twice }], 'skip'))
  t.same([dup.created, dup.failed.map(f => [f.index, f.error.code])], [1, [[1, 'EMAIL_TAKEN']]], 'an email twice in one call fails the second')

  t.same(dataOf(await importUsers(admin, [again], 'skip')), { created: 0, updated: 0, skipped: 1, failed: [] })
  t.equal((await stored(holder.email))?.firstName, 'Test', 'skip leaves the user alone')

  const updating = await importUsers(admin, [again], 'update')
  t.same(dataOf(updating), { created: 0, updated: 1, skipped: 0, failed: [] })
  const row = await stored(holder.email)
  t.equal(row?.id, holder.id, 'the same user')
  t.equal(row?.firstName, 'Changed')
  t.equal(row?.passwordHash, again.passwordHash, 'with the imported hash')
  t.equal((await login(holder.email, PASSWORD)).statusCode, 401, 'the old password is gone')
  t.equal((await login(holder.email, PW)).statusCode, 200, 'the imported one logs in')
  const me = await as(app, holder, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal(me.statusCode, 401, 'the logins made with the old password are ended')
  const trail = await db.selectFrom('userAuditLog').select(['action', 'changes']).where('requestId', '=', updating.headers['x-request-id'] as string).execute()
  t.same(trail.map(a => a.action), ['user.updated'], 'an update is audited as PATCH audits it')
  t.match(trail[0].changes, { firstName: { from: 'Test', to: 'Changed' } })
})

t.test('roles and status need roles:manage; users:write is needed at all', async t => {
  const mine = entry({ password: PASSWORD })
  t.same(dataOf(await importUsers(writer, [mine])).created, 1, 'users:write imports plain users')
  const withRoles = entry({ password: PASSWORD, roles: ['admin'] })
  assertError(t, await importUsers(writer, [entry({ password: PASSWORD }), withRoles]), 403, 'FORBIDDEN')
  assertError(t, await importUsers(writer, [entry({ password: PASSWORD, status: 'active' })]), 403, 'FORBIDDEN')
  t.notOk(await stored(withRoles.email), 'nothing imported')
  const plainUser = await createUser(app)
  assertError(t, await importUsers(plainUser, [entry({ password: PASSWORD })]), 403, 'FORBIDDEN')
  assertError(t, await app.inject({ method: 'POST', url: '/api/v1/users/import', payload: { users: [entry({ password: PASSWORD })] } }), 401, 'UNAUTHORIZED')
})

t.test('at most 1000 users per call; 1000 with hashes in one call', async t => {
  const hash = await legacy.bcrypt2b(PW)
  const tooMany = Array.from({ length: 1001 }, () => entry({ passwordHash: hash }))
  t.match(assertError(t, await importUsers(admin, tooMany), 400, 'VALIDATION_ERROR').details, [{ field: 'users' }])
  assertError(t, await importUsers(admin, [entry({ passwordHash: hash, nickname: 'x' })]), 400, 'VALIDATION_ERROR')
  assertError(t, await importUsers(admin, [entry({ passwordHash: hash })], 'merge'), 400, 'VALIDATION_ERROR')

  const thousand = tooMany.slice(0, 1000).map((e, i) => i % 2 ? { ...e, profile: { phone: '+44 20 7946 0000' }, roles: ['user'] } : e)
  const started = performance.now()
  const data = dataOf(await importUsers(admin, thousand))
  t.comment(`1000 users with a passwordHash imported in ${Math.round(performance.now() - started)} ms`)
  t.same(data, { created: 1000, updated: 0, skipped: 0, failed: [] })
  const last = await stored(thousand[999].email)
  t.match(last, { roleNames: ['user'], profile: { phone: '+44 20 7946 0000' }, passwordHash: hash })
  t.equal((await login(thousand[999].email, PW)).statusCode, 200)
})

import { randomUUID } from 'node:crypto'
import t from 'tap'
import { sql } from 'kysely'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail, type TestUser } from './helper.js'
import { RETENTION_JOB } from '../src/services/retention.js'

const newKey = () => `test-${randomUUID()}`

t.test('Idempotency-Key', async t => {
  const app = await build(t)
  const db = app.database.db
  const admin = await createUser(app, { roles: ['admin'] })
  const userBody = (email = uniqueEmail('idem')) => ({ email, password: PASSWORD, firstName: 'Ida', lastName: 'Empotent' })
  const createUserWith = (caller: TestUser, key: string | undefined, payload: object) =>
    as(app, caller, { method: 'POST', url: '/api/v1/users', payload, headers: key === undefined ? {} : { 'idempotency-key': key } })
  const usersWithEmail = async (email: string) =>
    Number((await db.selectFrom('users').select(eb => eb.fn.countAll().as('n')).where('email', '=', email.toLowerCase()).executeTakeFirstOrThrow()).n)
  const rowsOfKey = (key: string) => db.selectFrom('idempotencyKeys').selectAll().where('key', '=', key).execute()
  /** Holds usersService.create until the returned release is called (the route calls the service's method at request time). */
  function holdCreate () {
    const original = app.usersService.create
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    app.usersService.create = async (...args) => { await gate; return original(...args) }
    return () => { app.usersService.create = original; release() }
  }
  async function untilRunning (key: string) {
    for (let i = 0; i < 200; i++) {
      if ((await rowsOfKey(key))[0]?.state === 'running') return
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    throw new Error('the first request never claimed the key')
  }

  t.test('a replay answers the stored status, body, Location and ETag with Idempotent-Replayed, and creates nothing more', async t => {
    const key = newKey()
    const body = userBody()
    const first = await createUserWith(admin, key, body)
    t.equal(first.statusCode, 201, first.body)
    t.notOk(first.headers['idempotent-replayed'], 'the first answer is no replay')
    const again = await createUserWith(admin, key, { ...body })
    t.equal(again.statusCode, 201)
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.body, first.body, 'the same body')
    t.equal(again.headers.location, first.headers.location, 'the same Location')
    t.equal(again.headers.etag, first.headers.etag, 'the same ETag')
    t.not(again.headers['x-request-id'], first.headers['x-request-id'], 'its own request id')
    // Key order is not another request.
    const reordered = await createUserWith(admin, key, { lastName: body.lastName, firstName: body.firstName, password: body.password, email: body.email })
    t.equal(reordered.headers['idempotent-replayed'], 'true', 'the same body in another key order is the same request')
    t.equal(await usersWithEmail(body.email), 1, 'one user')
    const audits = await db.selectFrom('userAuditLog').select('id').where('action', '=', 'user.created').where('userId', '=', first.json().data.id).execute()
    t.equal(audits.length, 1, 'one audit row')
  })

  t.test('the same key with another body, path or method is 422 IDEMPOTENCY_KEY_REUSED', async t => {
    const key = newKey()
    const body = userBody()
    t.equal((await createUserWith(admin, key, body)).statusCode, 201)
    const other = userBody()
    assertError(t, await createUserWith(admin, key, other), 422, 'IDEMPOTENCY_KEY_REUSED')
    t.equal(await usersWithEmail(other.email), 0, 'nothing created')
    const role = await as(app, admin, { method: 'POST', url: '/api/v1/roles', headers: { 'idempotency-key': key }, payload: { name: `r-${randomUUID().slice(0, 8)}`, description: 'x', permissions: [] } })
    assertError(t, role, 422, 'IDEMPOTENCY_KEY_REUSED', 'another path')
  })

  t.test('while the first request runs, the same key is 409 IDEMPOTENCY_IN_PROGRESS; afterwards it replays', async t => {
    const key = newKey()
    const body = userBody()
    const release = holdCreate()
    const first = createUserWith(admin, key, body)
    await untilRunning(key)
    assertError(t, await createUserWith(admin, key, body), 409, 'IDEMPOTENCY_IN_PROGRESS')
    assertError(t, await createUserWith(admin, key, userBody()), 422, 'IDEMPOTENCY_KEY_REUSED', 'another request while running')
    release()
    const done = await first
    t.equal(done.statusCode, 201, done.body)
    const replay = await createUserWith(admin, key, body)
    t.equal(replay.headers['idempotent-replayed'], 'true')
    t.equal(await usersWithEmail(body.email), 1)
  })

  t.test('identical requests at once create exactly one user', async t => {
    const key = newKey()
    const body = userBody()
    const answers = await Promise.all(Array.from({ length: 6 }, () => createUserWith(admin, key, body)))
    const created = answers.filter(res => res.statusCode === 201 && !res.headers['idempotent-replayed'])
    t.equal(created.length, 1, 'one request did the work')
    for (const res of answers) {
      t.ok(res.statusCode === 201 || (res.statusCode === 409 && res.json().error.code === 'IDEMPOTENCY_IN_PROGRESS'), `${res.statusCode} ${res.body.slice(0, 120)}`)
      if (res.statusCode === 201) t.equal(res.body, created[0].body, 'replays answer the same body')
    }
    t.equal(await usersWithEmail(body.email), 1, 'one user')
  })

  t.test('the key is scoped to the caller: two users with the same key are independent', async t => {
    const other = await createUser(app, { roles: ['admin'] })
    const key = newKey()
    const [a, b] = [userBody(), userBody()]
    const first = await createUserWith(admin, key, a)
    const second = await createUserWith(other, key, b)
    t.equal(first.statusCode, 201)
    t.equal(second.statusCode, 201, second.body)
    t.notOk(second.headers['idempotent-replayed'])
    t.not(second.json().data.id, first.json().data.id)
    t.equal(await usersWithEmail(a.email) + await usersWithEmail(b.email), 2)
    t.same((await rowsOfKey(key)).map(row => row.scope).sort(), [`user:${admin.id}`, `user:${other.id}`].sort())
  })

  t.test('an anonymous route is its own scope; a stored 4xx replays with the replay\'s request id', async t => {
    const key = newKey()
    const body = userBody()
    const register = (payload: object) => app.inject({ method: 'POST', url: '/api/v1/auth/register', headers: { 'idempotency-key': key }, payload })
    const first = await register(body)
    t.equal(first.statusCode, 201, first.body)
    const again = await register(body)
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.body, first.body)
    t.equal(again.headers.location, first.headers.location)
    t.same((await rowsOfKey(key)).map(row => row.scope), ['route:POST /api/v1/auth/register'])
    assertError(t, await register(userBody()), 422, 'IDEMPOTENCY_KEY_REUSED')

    // The email is now taken: a new key's 409 EMAIL_TAKEN is stored and replayed.
    const takenKey = newKey()
    const taken = () => app.inject({ method: 'POST', url: '/api/v1/auth/register', headers: { 'idempotency-key': takenKey }, payload: body })
    const refused = await taken()
    assertError(t, refused, 409, 'EMAIL_TAKEN')
    const replayed = await taken()
    assertError(t, replayed, 409, 'EMAIL_TAKEN', 'replayed')
    t.equal(replayed.headers['idempotent-replayed'], 'true')
    t.not(replayed.json().error.requestId, refused.json().error.requestId)
  })

  t.test('routes that issue or end tokens ignore the key and store nothing', async t => {
    const user = await createUser(app)
    const key = newKey()
    const login = () => app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'idempotency-key': key }, payload: { email: user.email, password: user.password } })
    const [one, two] = [await login(), await login()]
    t.equal(one.statusCode, 200)
    t.equal(two.statusCode, 200)
    t.notOk(two.headers['idempotent-replayed'])
    t.not(two.json().data.refreshToken, one.json().data.refreshToken, 'a new login each time')
    const refreshed = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'idempotency-key': key }, payload: { refreshToken: one.json().data.refreshToken } })
    t.equal(refreshed.statusCode, 200)
    const logout = await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { 'idempotency-key': key }, payload: { refreshToken: two.json().data.refreshToken } })
    t.equal(logout.statusCode, 204)
    const all = await as(app, user, { method: 'POST', url: '/api/v1/auth/logout-all', headers: { 'idempotency-key': key } })
    t.equal(all.statusCode, 204)
    // An answer with a secret (TOTP enrolment) is never stored either: each call makes a new secret.
    const enrolling = await createUser(app)
    const setup = () => as(app, enrolling, { method: 'POST', url: '/api/v1/auth/mfa/totp/setup', headers: { 'idempotency-key': key } })
    const [s1, s2] = [await setup(), await setup()]
    t.equal(s1.statusCode, 200)
    t.not(s2.json().data.secret, s1.json().data.secret)
    t.notOk(s2.headers['idempotent-replayed'])
    t.same(await rowsOfKey(key), [], 'no key stored')

    const document = app.swagger() as { paths: Record<string, Record<string, { parameters?: Array<{ $ref?: string }> }>> }
    const honours = (path: string) => (document.paths[path].post.parameters ?? []).some(p => p.$ref === '#/components/parameters/IdempotencyKey')
    for (const path of ['/api/v1/auth/login', '/api/v1/auth/refresh', '/api/v1/auth/logout', '/api/v1/auth/logout-all', '/api/v1/auth/mfa/verify',
      '/api/v1/auth/passkeys/login/options', '/api/v1/auth/passkeys/login/verify', '/api/v1/auth/oidc/exchange', '/api/v1/auth/invitations/accept',
      '/api/v1/auth/mfa/totp/setup', '/api/v1/auth/mfa/totp/confirm', '/api/v1/auth/mfa/recovery-codes']) {
      t.notOk(honours(path), `${path} does not take the key`)
    }
    for (const path of ['/api/v1/users', '/api/v1/auth/register', '/api/v1/roles', '/api/v1/invitations', '/api/v1/users/{id}/restore']) {
      t.ok(honours(path), `${path} takes the key`)
    }
  })

  t.test('a 5xx is not stored: the retry runs again', async t => {
    const key = newKey()
    const body = userBody()
    const original = app.usersService.create
    app.usersService.create = async () => { throw new Error('the database fell over') }
    const failed = await createUserWith(admin, key, body)
    app.usersService.create = original
    assertError(t, failed, 500, 'INTERNAL_ERROR')
    t.same(await rowsOfKey(key), [], 'the key was released')
    const retry = await createUserWith(admin, key, body)
    t.equal(retry.statusCode, 201, retry.body)
    t.notOk(retry.headers['idempotent-replayed'], 'it ran')
    t.equal(await usersWithEmail(body.email), 1)
  })

  t.test('a malformed key is 400 and does nothing', async t => {
    for (const key of ['has space', 'semi;colon', 'x'.repeat(256), '']) {
      const body = userBody()
      const res = await createUserWith(admin, key, body)
      assertError(t, res, 400, 'VALIDATION_ERROR', JSON.stringify(key.slice(0, 20)))
      t.equal(await usersWithEmail(body.email), 0)
    }
    t.equal((await createUserWith(admin, 'A.b_c:d-9'.padEnd(255, 'z'), userBody())).statusCode, 201, '255 characters of the alphabet are fine')
  })

  t.test('no stored answer holds a token or secret', async t => {
    await app.inject({ method: 'POST', url: '/api/v1/auth/register', headers: { 'idempotency-key': newKey() }, payload: userBody() })
    await as(app, admin, { method: 'POST', url: '/api/v1/invitations', headers: { 'idempotency-key': newKey() }, payload: { email: uniqueEmail('inv') } })
    const bodies = (await db.selectFrom('idempotencyKeys').select(['body', 'headers']).execute()).map(row => JSON.stringify(row))
    t.ok(bodies.length >= 2)
    for (const stored of bodies) t.notMatch(stored, /accessToken|refreshToken|mfaToken|"token"|"secret"|recoveryCodes|eyJ/, 'no token in a stored answer')
  })

  t.test('the keys are shared by every instance', { skip: !process.env.DATABASE_URL && 'instances share keys through a shared PostgreSQL (DATABASE_URL)' }, async t => {
    const other = await build(t)
    const key = newKey()
    const body = userBody()
    const release = holdCreate()
    const first = createUserWith(admin, key, body)
    await untilRunning(key)
    assertError(t, await as(other, admin, { method: 'POST', url: '/api/v1/users', headers: { 'idempotency-key': key }, payload: body }), 409, 'IDEMPOTENCY_IN_PROGRESS', 'running on the other instance')
    release()
    t.equal((await first).statusCode, 201)
    const replay = await as(other, admin, { method: 'POST', url: '/api/v1/users', headers: { 'idempotency-key': key }, payload: body })
    t.equal(replay.statusCode, 201)
    t.equal(replay.headers['idempotent-replayed'], 'true', 'the other instance replays it')
    t.equal(await usersWithEmail(body.email), 1)
  })

  t.test('an expired key is free again, and the retention job deletes expired keys', async t => {
    const key = newKey()
    t.equal((await createUserWith(admin, key, userBody())).statusCode, 201)
    const expire = () => db.updateTable('idempotencyKeys').set({ expiresAt: sql<Date>`now() - interval '1 second'` }).where('key', '=', key).execute()
    await expire()
    const reused = await createUserWith(admin, key, userBody())
    t.equal(reused.statusCode, 201, 'another request with an expired key runs')
    t.notOk(reused.headers['idempotent-replayed'])
    const kept = newKey()
    t.equal((await createUserWith(admin, kept, userBody())).statusCode, 201)
    await expire()
    await app.jobs.enqueue(db, RETENTION_JOB, {})
    await app.jobs.runDue(RETENTION_JOB)
    // On a shared database another instance may have taken the job: wait for its run.
    for (let i = 0; i < 100 && (await rowsOfKey(key)).length; i++) await new Promise(resolve => setTimeout(resolve, 50))
    t.same(await rowsOfKey(key), [], 'the expired key is purged')
    t.equal((await rowsOfKey(kept)).length, 1, 'a live key stays')
    // The recurring retention purge: each instance offers one job per hour slot when it starts (and hourly); one per slot is kept.
    const slots = await sql<{ n: number, slots: number }>`select count(*)::int as n, count(distinct singleton_on)::int as slots from pgboss.job
      where name = ${RETENTION_JOB} and singleton_on is not null`.execute(db)
    t.ok(slots.rows[0].n >= 1, 'a purge job was offered for this hour')
    t.equal(slots.rows[0].n, slots.rows[0].slots, 'one job per slot')
  })
})

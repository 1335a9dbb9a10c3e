import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { build, createUser } from './helper.js'
import { auditRows, login, me, refresh, sha256 } from './auth-helpers.js'
import { createMemoryTtlCache } from '../src/lib/ttl-cache.js'

function liveTokenCount (app: Awaited<ReturnType<typeof build>>, userId: string) {
  return app.database.db.selectFrom('refreshTokens as rt').innerJoin('userSessions as s', 's.id', 'rt.sessionId')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('rt.userId', '=', userId).where('rt.spentAt', 'is', null).where('s.revokedAt', 'is', null)
    .executeTakeFirstOrThrow().then(r => r.n)
}

t.test('refresh rotation and reuse detection', async t => {
  const app = await build(t)

  t.test('a refresh gives a new pair; the old refresh token is spent', async t => {
    const user = await createUser(app)
    const res = await refresh(app, user.refreshToken)
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.headers['cache-control'], 'no-store')
    const pair = res.json().data
    t.equal(pair.tokenType, 'Bearer')
    t.equal(pair.user.id, user.id)
    t.not(pair.refreshToken, user.refreshToken)
    t.ok(pair.refreshToken.length >= 43, '256-bit token')
    t.equal((await me(app, pair.accessToken)).statusCode, 200, 'the new access token works')

    const stored = await app.database.db.selectFrom('refreshTokens').select(['tokenHash', 'spentAt', 'expiresAt', 'sessionId'])
      .where('userId', '=', user.id).orderBy('createdAt').execute()
    t.equal(stored.length, 2)
    t.notOk(stored.some(r => r.tokenHash === user.refreshToken || r.tokenHash === pair.refreshToken), 'raw tokens are never stored')
    t.same(stored.map(r => r.tokenHash).sort(), [sha256(user.refreshToken), sha256(pair.refreshToken)].sort())
    const [first, second] = stored.sort((a, b) => (a.spentAt ? 0 : 1) - (b.spentAt ? 0 : 1))
    t.ok(first.spentAt, 'the presented token is spent')
    t.equal(second.spentAt, null)
    t.equal(second.sessionId, first.sessionId, 'same family')
    t.equal(second.expiresAt.getTime(), first.expiresAt.getTime(), 'the expiry is absolute: rotation does not extend the login')
  })

  t.test('a spent token presented again is TOKEN_REUSED and revokes the whole family', async t => {
    const user = await createUser(app)
    const other = await login(app, user.email)
    const first = (await refresh(app, user.refreshToken)).json().data
    const second = (await refresh(app, first.refreshToken)).json().data
    t.equal((await me(app, second.accessToken)).statusCode, 200)

    const replay = await refresh(app, user.refreshToken)
    t.equal(replay.statusCode, 401)
    t.equal(replay.json().error.code, 'TOKEN_REUSED')

    const newest = await refresh(app, second.refreshToken)
    t.equal(newest.statusCode, 401, 'the newest refresh token of the family stopped working')
    t.equal((await me(app, second.accessToken)).statusCode, 401, 'so did its access tokens')
    t.equal((await me(app, other.token)).statusCode, 200, 'another login of the same user is unaffected')
    t.equal((await refresh(app, other.refreshToken)).statusCode, 200)

    const audit = await auditRows(app, user.id, 'auth.token_reused')
    t.equal(audit.length, 1)
    t.equal(audit[0].actorId, null)
    t.notOk(JSON.stringify(audit[0].changes).includes(user.refreshToken), 'no token in the audit row')
  })

  t.test('unknown, expired, revoked or suspended-user tokens are 401 UNAUTHORIZED and spend nothing', async t => {
    const unknown = await refresh(app, 'not-a-real-token')
    t.equal(unknown.statusCode, 401)
    t.equal(unknown.json().error.code, 'UNAUTHORIZED')

    const expired = await createUser(app)
    await app.database.db.updateTable('refreshTokens').set({ expiresAt: new Date(Date.now() - 1000) })
      .where('tokenHash', '=', sha256(expired.refreshToken)).execute()
    const res = await refresh(app, expired.refreshToken)
    t.equal(res.statusCode, 401)
    t.equal(res.json().error.code, 'UNAUTHORIZED')

    const sessionExpired = await createUser(app)
    await app.database.db.updateTable('userSessions').set({ expiresAt: new Date(Date.now() - 1000) })
      .where('userId', '=', sessionExpired.id).execute()
    t.equal((await refresh(app, sessionExpired.refreshToken)).json().error.code, 'UNAUTHORIZED')

    const loggedOut = await createUser(app)
    await app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken: loggedOut.refreshToken } })
    const afterLogout = await refresh(app, loggedOut.refreshToken)
    t.equal(afterLogout.statusCode, 401)
    t.equal(afterLogout.json().error.code, 'UNAUTHORIZED')

    const suspended = await createUser(app)
    await app.database.db.updateTable('users').set({ status: 'suspended' }).where('id', '=', suspended.id).execute()
    t.equal((await refresh(app, suspended.refreshToken)).statusCode, 401)
    await app.database.db.updateTable('users').set({ status: 'active' }).where('id', '=', suspended.id).execute()
    t.equal((await refresh(app, suspended.refreshToken)).statusCode, 200, 'the refused refresh did not spend the token')
  })

  t.test('10 parallel refreshes of one token: exactly one 200, never two live tokens, never a 500', async t => {
    const user = await createUser(app)
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(app, user.refreshToken)))
    const statuses = results.map(r => r.statusCode)
    t.equal(statuses.filter(s => s === 200).length, 1, `statuses: ${statuses.join(',')}`)
    t.notOk(statuses.some(s => s >= 500), 'no 5xx')
    for (const r of results.filter(r => r.statusCode !== 200)) {
      t.equal(r.statusCode, 401)
      t.equal(r.json().error.code, 'TOKEN_REUSED')
    }
    t.ok(await liveTokenCount(app, user.id) <= 1, 'at most one live refresh token')
  })

  t.test('a refresh updates the session last_used_at', async t => {
    const user = await createUser(app)
    const past = new Date(Date.now() - 3600_000)
    await app.database.db.updateTable('userSessions').set({ lastUsedAt: past }).where('userId', '=', user.id).execute()
    const pair = (await refresh(app, user.refreshToken)).json().data
    const sessions = (await app.inject({ method: 'GET', url: '/api/v1/auth/sessions', headers: { authorization: `Bearer ${pair.accessToken}` } })).json().data
    t.equal(sessions.length, 1)
    t.ok(new Date(sessions[0].lastUsedAt).getTime() > past.getTime() + 60_000, 'lastUsedAt moved forward')
  })

  t.test('bad refresh bodies are 400', async t => {
    for (const payload of [{}, { refreshToken: '' }, { refreshToken: 'x', extra: 1 }, { refreshToken: 'x'.repeat(513) }]) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload })
      t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 60))
    }
  })
})

t.test('REFRESH_REUSE_GRACE: replaying the token just spent gets the same answer as its rotation', async t => {
  const app = await build(t, { refreshReuseGraceSec: 30 })

  t.test('a replay within the window is the same 200 and keeps the family alive', async t => {
    const user = await createUser(app)
    const rotated = await refresh(app, user.refreshToken)
    t.equal(rotated.statusCode, 200)
    const replay = await refresh(app, user.refreshToken)
    t.equal(replay.statusCode, 200)
    t.same(replay.json(), rotated.json(), 'the same tokens again')
    const pair = rotated.json().data
    t.equal((await me(app, pair.accessToken)).statusCode, 200)
    t.equal((await refresh(app, pair.refreshToken)).statusCode, 200, 'the family was not revoked')
    t.equal((await auditRows(app, user.id, 'auth.token_reused')).length, 0)
  })

  t.test('parallel refreshes of one token all get the one rotation, and one live token exists', async t => {
    // Repeated: the losers of a race must never look for the answer before the winner has stored it.
    for (let round = 0; round < 15; round++) {
      const user = await createUser(app)
      const results = await Promise.all(Array.from({ length: 10 }, () => refresh(app, user.refreshToken)))
      t.same(results.map(r => r.statusCode), Array(10).fill(200), `round ${round}`)
      t.equal(new Set(results.map(r => r.json().data?.refreshToken)).size, 1, 'one new refresh token')
      t.equal(await liveTokenCount(app, user.id), 1)
    }
  })

  t.test('only the token spent last is forgiven: an older one is reuse, and so is a replay after logout', async t => {
    const user = await createUser(app)
    const first = (await refresh(app, user.refreshToken)).json().data
    t.equal((await refresh(app, first.refreshToken)).statusCode, 200)
    const older = await refresh(app, user.refreshToken)
    t.equal(older.statusCode, 401, 'its successor was used already')
    t.equal(older.json().error.code, 'TOKEN_REUSED')

    const loggedOut = await createUser(app)
    const pair = (await refresh(app, loggedOut.refreshToken)).json().data
    await app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken: pair.refreshToken } })
    const replay = await refresh(app, loggedOut.refreshToken)
    t.equal(replay.statusCode, 401, 'no tokens of a logged-out family are handed out again')
    t.equal(replay.json().error.code, 'TOKEN_REUSED')
  })
})

t.test('REFRESH_REUSE_GRACE is off by default: no grace replay', async t => {
  const app = await build(t)
  t.equal(app.config.refreshReuseGraceSec, 0)
  const user = await createUser(app)
  t.equal((await refresh(app, user.refreshToken)).statusCode, 200)
  t.equal((await refresh(app, user.refreshToken)).json().error.code, 'TOKEN_REUSED')
})

t.test('the in-process TTL cache expires entries and stays bounded', async t => {
  let now = 1_000_000
  const cache = createMemoryTtlCache<{ n: number }>(3, () => now)
  await cache.set('a', { n: 1 }, 10)
  t.same(await cache.get('a'), { n: 1 })
  now += 9_999
  t.same(await cache.get('a'), { n: 1 }, 'alive until its TTL')
  now += 1
  t.equal(await cache.get('a'), undefined, 'gone at its TTL')

  for (const key of ['k1', 'k2', 'k3', 'k4']) await cache.set(key, { n: 0 }, 60)
  t.equal(await cache.get('k1'), undefined, 'the oldest entry went when the cache was full')
  t.same(await cache.get('k4'), { n: 0 })
  await cache.delete('k4')
  t.equal(await cache.get('k4'), undefined)
  await cache.set('zero', { n: 0 }, 0)
  t.equal(await cache.get('zero'), undefined, 'a zero TTL stores nothing')
})

t.test('with Redis, a replay within REFRESH_REUSE_GRACE is forgiven on another instance too', { skip: !process.env.REDIS_URL && 'REDIS_URL not set' }, async t => {
  const redisKeyPrefix = `test:${randomUUID()}:`
  const a = await build(t, { redisKeyPrefix, refreshReuseGraceSec: 30 })
  const b = await build(t, { redisKeyPrefix, refreshReuseGraceSec: 30 })
  const user = await createUser(a)
  const rotated = await refresh(a, user.refreshToken)
  t.equal(rotated.statusCode, 200)
  const ttl = await a.redis!.pttl(`refresh-grace:${sha256(user.refreshToken)}`)
  t.ok(ttl > 25_000 && ttl <= 30_000, `the answer is kept in Redis for the window (pttl ${ttl})`)
  const replay = await refresh(b, user.refreshToken)
  t.equal(replay.statusCode, 200)
  t.same(replay.json(), rotated.json(), 'the other instance gives the same tokens again')
})

t.test('REFRESH_REUSE_GRACE with Redis failing: no errors, the safe answer', { skip: !process.env.REDIS_URL && 'REDIS_URL not set' }, async t => {
  const app = await build(t, { refreshReuseGraceSec: 30 })
  const user = await createUser(app)
  t.equal((await refresh(app, user.refreshToken)).statusCode, 200)
  app.redis!.get = async () => { throw new Error('Command timed out') }
  const replay = await refresh(app, user.refreshToken)
  t.equal(replay.statusCode, 401, 'without the stored answer a replay is reuse')
  t.equal(replay.json().error.code, 'TOKEN_REUSED')
})

t.test('REFRESH_REUSE_GRACE with Redis unreachable: the answer is kept in process', async t => {
  const app = await build(t, { refreshReuseGraceSec: 30 }, { REDIS_URL: 'redis://127.0.0.1:1' })
  t.not(app.redis?.status, 'ready')
  const user = await createUser(app)
  const rotated = await refresh(app, user.refreshToken)
  t.equal(rotated.statusCode, 200)
  const replay = await refresh(app, user.refreshToken)
  t.equal(replay.statusCode, 200)
  t.same(replay.json(), rotated.json())
})

import t from 'tap'
import { sql } from 'kysely'
import { AuthStateCache } from '../src/lib/auth-state-cache.js'
import { buildApp } from '../src/app.js'
import { as, build, createUser, testConfig, validateResponses } from './helper.js'

async function eventually (check: () => Promise<boolean>, ms = 3000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return false
}

t.test('the cache: hits, per-user drops, and no stale store from a lookup that raced a drop', async t => {
  const cache = new AuthStateCache<number>(60_000)
  let loads = 0
  const load = async () => ++loads
  t.equal(await cache.get('u', 's', load), 1, 'loaded while disabled')
  t.equal(await cache.get('u', 's', load), 2, 'nothing stored while disabled')
  cache.setEnabled(true)
  t.equal(await cache.get('u', 's', load), 3)
  t.equal(await cache.get('u', 's', load), 3, 'hit')
  t.equal(await cache.get('v', 's', load), 4)
  cache.clearUser('u')
  t.equal(await cache.get('u', 's', load), 5, 'dropped user reloads')
  t.equal(await cache.get('v', 's', load), 4, 'other users keep their entries')

  let release!: () => void
  const slow = cache.get('w', 's', () => new Promise<number>(resolve => { release = () => resolve(100) }))
  cache.clearUser('w')
  release()
  t.equal(await slow, 100)
  t.equal(await cache.get('w', 's', load), 6, 'the answer of a lookup that started before the drop was not kept')
  cache.clear()
  t.equal(await cache.get('v', 's', load), 7, 'clear drops everyone')
})

t.test('a change made straight in the database reaches the cache through its notification', async t => {
  const app = await build(t)
  const user = await createUser(app)
  const me = () => as(app, user, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal((await me()).statusCode, 200)
  t.equal((await me()).statusCode, 200, 'second request served from the cache')
  await sql`update user_sessions set revoked_at = now() where user_id = ${user.id}`.execute(app.database.db)
  t.ok(await eventually(async () => (await me()).statusCode === 401), 'the revoked login is refused')
})

t.test('a user deleted meanwhile: /auth/me is 401 also while the cache still holds the login', async t => {
  const app = await build(t)
  const user = await createUser(app)
  const me = () => as(app, user, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal((await me()).statusCode, 200)
  t.equal((await me()).statusCode, 200, 'the login is in the cache')
  // As another instance deletes it: this one hears of it only by the notification, a moment later.
  await sql`update users set deleted_at = now() where id = ${user.id}`.execute(app.database.db)
  const res = await me()
  t.equal(res.statusCode, 401, 'refused, not 404 (undocumented for getMe)')
  t.equal(res.json().error.code, 'UNAUTHORIZED')
})

t.test('two instances: a suspension made through one is refused by the other', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL: several instances share one PostgreSQL' }, async t => {
  const one = await build(t)
  const other = await buildApp(testConfig())
  await other.ready()
  validateResponses(other)
  t.teardown(() => other.close())
  const admin = await createUser(one, { roles: ['admin'] })
  const user = await createUser(one)
  const meOnOther = () => as(other, user, { method: 'GET', url: '/api/v1/auth/me' })
  t.equal((await meOnOther()).statusCode, 200)
  t.equal((await meOnOther()).statusCode, 200, 'cached on the other instance')
  const suspended = await as(one, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { status: 'suspended' } })
  t.equal(suspended.statusCode, 200)
  t.ok(await eventually(async () => (await meOnOther()).statusCode === 401), 'the other instance refuses the suspended user')
})

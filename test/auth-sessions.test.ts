import t from 'tap'
import { as, build, createUser } from './helper.js'
import { auditRows, login, me, refresh } from './auth-helpers.js'

const logout = (app: Awaited<ReturnType<typeof build>>, refreshToken: string) =>
  app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refreshToken } })

t.test('logins, sessions and logout', async t => {
  const app = await build(t)

  t.test('logout ends that login only: its refresh and access tokens stop working', async t => {
    const user = await createUser(app)
    const other = await login(app, user.email)
    const res = await logout(app, user.refreshToken)
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal((await me(app, user.token)).statusCode, 401, 'its access token is refused')
    t.equal((await refresh(app, user.refreshToken)).statusCode, 401, 'its refresh token is refused')
    t.equal((await me(app, other.token)).statusCode, 200, 'the other login still works')

    const audit = await auditRows(app, user.id, 'auth.logout')
    t.equal(audit.length, 1)
    t.equal(audit[0].actorId, user.id)
    t.notOk(JSON.stringify(audit[0]).includes(user.refreshToken), 'no token in the audit row')
  })

  t.test('logout is idempotent: an unknown or already used token is also 204', async t => {
    const user = await createUser(app)
    t.equal((await logout(app, user.refreshToken)).statusCode, 204)
    t.equal((await logout(app, user.refreshToken)).statusCode, 204)
    t.equal((await logout(app, 'never-issued')).statusCode, 204)
    t.equal((await auditRows(app, user.id, 'auth.logout')).length, 1, 'one logout, one audit row')
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: {} })).statusCode, 400)
  })

  t.test('logout-all ends every login of the caller, and only the caller', async t => {
    const user = await createUser(app)
    const second = await login(app, user.email)
    const bystander = await createUser(app)
    t.equal((await as(app, undefined, { method: 'POST', url: '/api/v1/auth/logout-all' })).statusCode, 401, 'needs a token')
    const res = await as(app, user, { method: 'POST', url: '/api/v1/auth/logout-all' })
    t.equal(res.statusCode, 204)
    for (const login of [user, second]) {
      t.equal((await me(app, login.token)).statusCode, 401)
      t.equal((await refresh(app, login.refreshToken)).statusCode, 401)
    }
    t.equal((await me(app, bystander.token)).statusCode, 200)
    t.equal((await auditRows(app, user.id, 'auth.logout')).length, 1)
  })

  t.test('GET /sessions lists the caller\'s active logins and marks the current one', async t => {
    const user = await createUser(app)
    const phone = await login(app, user.email, undefined, 'phone-agent/1.0')
    const gone = await login(app, user.email)
    await logout(app, gone.refreshToken)
    const res = await as(app, phone, { method: 'GET', url: '/api/v1/auth/sessions' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    const sessions = res.json().data
    t.equal(sessions.length, 2, 'the logged-out session is not listed')
    const current = sessions.filter((s: { current: boolean }) => s.current)
    t.equal(current.length, 1)
    t.equal(current[0].userAgent, 'phone-agent/1.0')
    t.equal(current[0].ip, '127.0.0.1')
    for (const s of sessions) t.same(Object.keys(s).sort(), ['createdAt', 'current', 'id', 'ip', 'lastUsedAt', 'userAgent'])
    t.equal((await as(app, undefined, { method: 'GET', url: '/api/v1/auth/sessions' })).statusCode, 401)
  })

  t.test('DELETE /sessions/:id ends one own login; anyone else\'s or an unknown one is 404', async t => {
    const user = await createUser(app)
    const second = await login(app, user.email)
    const stranger = await createUser(app)
    const sessions = (await as(app, user, { method: 'GET', url: '/api/v1/auth/sessions' })).json().data
    const target = sessions.find((s: { current: boolean }) => !s.current)
    const strangerSession = (await as(app, stranger, { method: 'GET', url: '/api/v1/auth/sessions' })).json().data[0]

    const foreign = await as(app, user, { method: 'DELETE', url: `/api/v1/auth/sessions/${strangerSession.id}` })
    t.equal(foreign.statusCode, 404)
    t.equal(foreign.json().error.code, 'NOT_FOUND')
    t.equal((await me(app, stranger.token)).statusCode, 200, "the stranger's login is untouched")
    t.equal((await as(app, user, { method: 'DELETE', url: '/api/v1/auth/sessions/00000000-0000-4000-8000-000000000000' })).statusCode, 404)
    t.equal((await as(app, user, { method: 'DELETE', url: '/api/v1/auth/sessions/not-a-uuid' })).statusCode, 400)

    const res = await as(app, user, { method: 'DELETE', url: `/api/v1/auth/sessions/${target.id}` })
    t.equal(res.statusCode, 204)
    t.equal((await me(app, second.token)).statusCode, 401, 'the ended login\'s access token is refused')
    t.equal((await refresh(app, second.refreshToken)).statusCode, 401)
    t.equal((await me(app, user.token)).statusCode, 200, 'the current login still works')
    t.equal((await as(app, user, { method: 'DELETE', url: `/api/v1/auth/sessions/${target.id}` })).statusCode, 404, 'already ended')
  })
})

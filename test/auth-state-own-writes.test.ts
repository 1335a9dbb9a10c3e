import t from 'tap'
import fp from 'fastify-plugin'
import database from '../src/plugins/app/db.js'
import { as, createUser, testConfig, validateResponses } from './helper.js'

t.test('this instance\'s own writes reach its next request without waiting for their notification', async t => {
  // Notifications are held back here (the listener reports itself listening, so the cache is on,
  // but nothing arrives): only the app's own clearing after each write can make the next request see it.
  const deafDatabase = fp(async fastify => {
    await fastify.register(database)
    fastify.database.listen = async (_channel, listener) => listener.onListening(true)
  }, { name: 'database', dependencies: ['config'] })
  const { buildApp } = await t.mockImport<typeof import('../src/app.js')>('../src/app.js', { '../src/plugins/app/db.js': deafDatabase })
  const app = await buildApp(testConfig())
  await app.ready()
  validateResponses(app)
  t.teardown(() => app.close())
  const me = (user: { token: string }) => as(app, user, { method: 'GET', url: '/api/v1/auth/me' })

  const user = await createUser(app)
  t.equal((await me(user)).statusCode, 200)
  t.equal((await me(user)).statusCode, 200, 'cached')
  t.equal((await as(app, user, { method: 'POST', url: '/api/v1/auth/logout-all' })).statusCode, 204)
  t.equal((await me(user)).statusCode, 401, 'logged out everywhere: refused at once')

  // A refresh that succeeds keeps the cache; a replayed one revokes its login, and that must show at once too.
  const other = await createUser(app)
  const rotated = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: other.refreshToken } })
  t.equal(rotated.statusCode, 200)
  const next = { token: rotated.json().data.accessToken }
  t.equal((await me(next)).statusCode, 200)
  const replay = await app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: other.refreshToken } })
  t.equal(replay.json().error?.code, 'TOKEN_REUSED')
  t.equal((await me(next)).statusCode, 401, 'the reused login is refused at once')
})

import t from 'tap'
import { buildApp } from '../src/app.js'
import { PASSWORD, assertError, createUser, testConfig, validateResponses } from './helper.js'

// Two apps in one process (as the tests and a multi-tenant host run them) share no state: each
// has its own database handle, compiled statements, auth-state cache and in-process counters.
t.test('two apps in one process never share a cache', async t => {
  const embedded = { databaseUrl: undefined, redisUrl: undefined, dataDir: 'memory://' }
  const [one, two] = await Promise.all([buildApp(testConfig(embedded, { LOGIN_MAX_FAILURES: '2' })), buildApp(testConfig(embedded, { LOGIN_MAX_FAILURES: '2' }))])
  t.teardown(() => Promise.all([one.close(), two.close()]))
  await Promise.all([one.ready(), two.ready()])
  validateResponses(one)
  validateResponses(two)
  t.not(one.database.compiled, two.database.compiled, 'compiled statements per database handle')

  const user = await createUser(one)
  const read = (app: typeof one) => app.inject({ method: 'GET', url: `/api/v1/users/${user.id}`, headers: { authorization: `Bearer ${user.token}` } })
  t.equal((await read(one)).statusCode, 200, 'the first app knows the login (and has cached it)')
  assertError(t, await read(two), 401, 'UNAUTHORIZED', 'the second app has no such login, whatever the first cached')

  const login = (app: typeof one, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: user.email, password } })
  for (let i = 0; i < 2; i++) t.equal((await login(one, 'Wrong-password-1')).statusCode, 401)
  assertError(t, await login(one, PASSWORD), 429, 'RATE_LIMITED', 'locked on the first app')
  await createUser(two, { email: user.email })
  t.equal((await login(two, PASSWORD)).statusCode, 200, 'the same account on the second app is not locked: it counted nothing')
})

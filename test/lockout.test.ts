import t from 'tap'
import { assertError, build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const WRONG = 'Wrong-password-1'
const login = (email: string, password: string, remoteAddress = '127.0.0.1') =>
  ({ method: 'POST' as const, url: '/api/v1/auth/login', payload: { email, password }, remoteAddress })

t.test('login lockout per account', async t => {
  const app = await build(t, {}, { LOGIN_MAX_FAILURES: '3', LOGIN_LOCK_WINDOW: '10m' })

  t.test('after the failures, logins answer 429 until the window ends, whatever the password', async t => {
    const user = await createUser(app)
    for (let i = 0; i < 3; i++) {
      t.equal((await app.inject(login(user.email, WRONG))).statusCode, 401, `failure ${i + 1} is a normal 401`)
    }
    const locked = await app.inject(login(user.email, WRONG))
    assertError(t, locked, 429, 'RATE_LIMITED', 'wrong password while locked')
    const retryAfter = Number(locked.headers['retry-after'])
    t.ok(retryAfter > 0 && retryAfter <= 600, `Retry-After is the rest of the window (${retryAfter}s)`)

    const right = await app.inject(login(user.email, PASSWORD))
    assertError(t, right, 429, 'RATE_LIMITED', 'right password while locked')
    const differentCase = await app.inject(login(`  ${user.email.toUpperCase()} `, PASSWORD))
    assertError(t, differentCase, 429, 'RATE_LIMITED', 'the email is normalised')
  })

  t.test('other accounts are not affected', async t => {
    const victim = await createUser(app)
    const other = await createUser(app)
    for (let i = 0; i < 4; i++) await app.inject(login(victim.email, WRONG))
    assertError(t, await app.inject(login(victim.email, PASSWORD)), 429, 'RATE_LIMITED')
    t.equal((await app.inject(login(other.email, PASSWORD))).statusCode, 200)
  })

  t.test('a success before the threshold resets the count', async t => {
    const user = await createUser(app)
    for (let i = 0; i < 2; i++) await app.inject(login(user.email, WRONG))
    t.equal((await app.inject(login(user.email, PASSWORD))).statusCode, 200, 'success with 2 failures counted')
    for (let i = 0; i < 3; i++) {
      t.equal((await app.inject(login(user.email, WRONG))).statusCode, 401, `failure ${i + 1} after the reset is a 401`)
    }
    assertError(t, await app.inject(login(user.email, PASSWORD)), 429, 'RATE_LIMITED', 'locked after 3 new failures')
  })

  t.test('unknown emails lock the same way, so a lock tells nothing about existence', async t => {
    const email = uniqueEmail('ghost')
    for (let i = 0; i < 3; i++) t.equal((await app.inject(login(email, WRONG))).statusCode, 401)
    assertError(t, await app.inject(login(email, WRONG)), 429, 'RATE_LIMITED')
  })

  t.test('parallel guesses cannot slip past the limit', async t => {
    const user = await createUser(app)
    const answers = await Promise.all(Array.from({ length: 8 }, () => app.inject(login(user.email, WRONG))))
    const statuses = answers.map(res => res.statusCode).sort()
    t.same(statuses, [401, 401, 401, 429, 429, 429, 429, 429])
  })
})

t.test('failed logins are also counted per client IP, across accounts', async t => {
  const app = await build(t, {}, { LOGIN_MAX_FAILURES: '5', LOGIN_IP_MAX_FAILURES: '3', LOGIN_LOCK_WINDOW: '10m' })
  const user = await createUser(app)
  const sprayer = '198.51.100.7'
  for (let i = 0; i < 3; i++) {
    t.equal((await app.inject(login(uniqueEmail('spray'), WRONG, sprayer))).statusCode, 401)
  }
  assertError(t, await app.inject(login(user.email, PASSWORD, sprayer)), 429, 'RATE_LIMITED', 'that IP is locked out')
  t.equal((await app.inject(login(user.email, PASSWORD, '198.51.100.8'))).statusCode, 200, 'another IP is not')

  const office = '198.51.100.9'
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject(login(user.email, PASSWORD, office))).statusCode, 200, `successful login ${i + 1} does not count`)
  }
})

t.test('a pending user with the right password gets 403 each time, never a lockout', async t => {
  const app = await build(t, {}, { LOGIN_MAX_FAILURES: '2', LOGIN_LOCK_WINDOW: '10m', REQUIRE_EMAIL_VERIFICATION: 'true' })
  const email = uniqueEmail('pending')
  const registered = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password: PASSWORD, firstName: 'P', lastName: 'U' } })
  t.equal(registered.json().data.status, 'pending')
  for (let i = 0; i < 4; i++) assertError(t, await app.inject(login(email, PASSWORD)), 403, 'FORBIDDEN', `attempt ${i + 1}`)
  t.equal((await app.inject(login(email, WRONG))).statusCode, 401, 'a wrong password is still a plain failure')
})

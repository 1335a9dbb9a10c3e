import { randomUUID } from 'node:crypto'
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

t.test('correct logins never count toward a lockout, however many run at once', async t => {
  const app = await build(t, {}, { LOGIN_MAX_FAILURES: '5', LOGIN_IP_MAX_FAILURES: '5', LOGIN_LOCK_WINDOW: '10m' })

  t.test('50 concurrent correct logins of one account from one address all succeed', async t => {
    const user = await createUser(app)
    const answers = await Promise.all(Array.from({ length: 50 }, () => app.inject(login(user.email, PASSWORD))))
    t.same(answers.map(res => res.statusCode), Array(50).fill(200))
    t.equal(new Set(answers.map(res => res.json().data.refreshToken)).size, 50, 'each is a new login')
    t.equal((await app.inject(login(user.email, PASSWORD))).statusCode, 200, 'and the account is not locked afterwards')
  })

  t.test('with failures already counted, concurrent correct logins still all succeed and clear them', async t => {
    const user = await createUser(app, {})
    for (let i = 0; i < 4; i++) t.equal((await app.inject(login(user.email, WRONG, '198.51.100.20'))).statusCode, 401)
    const answers = await Promise.all(Array.from({ length: 20 }, () => app.inject(login(user.email, PASSWORD, '198.51.100.21'))))
    t.same(answers.map(res => res.statusCode), Array(20).fill(200))
    for (let i = 0; i < 5; i++) {
      t.equal((await app.inject(login(user.email, WRONG, `198.51.100.${30 + i}`))).statusCode, 401, `failure ${i + 1} after the successes`)
    }
    assertError(t, await app.inject(login(user.email, PASSWORD, '198.51.100.40')), 429, 'RATE_LIMITED', 'five new failures lock it')
  })

  t.test('30 concurrent wrong guesses from 30 addresses: exactly 5 are checked', async t => {
    const user = await createUser(app)
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => app.inject(login(user.email, WRONG, `203.0.113.${i}`))))
    const statuses = answers.map(res => res.statusCode)
    t.equal(statuses.filter(status => status === 401).length, 5, 'five 401s')
    t.equal(statuses.filter(status => status === 429).length, 25, 'the rest 429')
    assertError(t, await app.inject(login(user.email, PASSWORD, '203.0.113.99')), 429, 'RATE_LIMITED', 'and the account is locked')
  })

  t.test('only failures count toward the per-address limit', async t => {
    const users = await Promise.all(Array.from({ length: 10 }, () => createUser(app)))
    const address = '198.51.100.50'
    const answers = await Promise.all(users.flatMap(user => [0, 1, 2].map(() => app.inject(login(user.email, PASSWORD, address)))))
    t.same(answers.map(res => res.statusCode), Array(30).fill(200), '30 correct logins from one address, limit 5')
  })
})

t.test('across instances sharing Redis, concurrent guesses still stop at the limit', { skip: !process.env.REDIS_URL && 'needs REDIS_URL: in-process budgets are one instance\'s by design' }, async t => {
  const redisKeyPrefix = `test:${randomUUID()}:`
  const env = { LOGIN_MAX_FAILURES: '4', LOGIN_LOCK_WINDOW: '10m' }
  const [one, two] = [await build(t, { redisKeyPrefix }, env), await build(t, { redisKeyPrefix }, env)]
  const user = await createUser(one)
  const wrong = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? one : two).inject(login(user.email, WRONG, `192.0.2.${i}`))))
  const statuses = wrong.map(res => res.statusCode)
  t.equal(statuses.filter(status => status === 401).length, 4, 'four 401s over both instances')
  t.equal(statuses.filter(status => status === 429).length, 20, 'the rest 429')
  assertError(t, await two.inject(login(user.email, PASSWORD)), 429, 'RATE_LIMITED', 'locked on the other instance too')

  const other = await createUser(one)
  const right = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? one : two).inject(login(other.email, PASSWORD))))
  t.same(right.map(res => res.statusCode), Array(50).fill(200), '50 concurrent correct logins over both instances')
})

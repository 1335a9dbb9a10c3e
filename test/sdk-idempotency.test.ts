// The SDK's idempotent POSTs (client.idempotentPost) against the live service over real HTTP, in
// whichever database mode the suite runs.
import t from 'tap'
import { createClient, newIdempotencyKey } from '../sdk/src/index.js'
import { build, createUser, PASSWORD, uniqueEmail } from './helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('the SDK\'s idempotent POSTs', async t => {
  const app = await build(t)
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' })
  const admin = await createUser(app, { roles: ['admin'] })
  const tokens = { accessToken: admin.token, refreshToken: admin.refreshToken }
  const body = () => ({ email: uniqueEmail('sdk-idem'), password: PASSWORD, firstName: 'Sdk', lastName: 'Idem' })
  const usersWithEmail = async (email: string) =>
    (await app.database.db.selectFrom('users').select('id').where('email', '=', email.toLowerCase()).execute()).length
  /** Every request sent, with the key it carried and what it got (null: the connection was "lost"). */
  const sent: Array<{ key: string | null, status: number | null }> = []

  t.beforeEach(() => { sent.length = 0 })

  t.test('sends a new random key, and the same key given again answers the stored response', async t => {
    const sdk = createClient({
      baseUrl,
      tokens,
      fetch: async request => {
        const response = await fetch(request)
        sent.push({ key: request.headers.get('idempotency-key'), status: response.status })
        return response
      }
    })
    const user = body()
    const first = await sdk.idempotentPost('/api/v1/users', { body: user })
    t.equal(first.response.status, 201)
    t.match(sent[0].key, UUID, 'a random UUID key')
    const key = sent[0].key!
    const again = await sdk.idempotentPost('/api/v1/users', { body: user, idempotencyKey: key })
    t.equal(again.response.headers.get('idempotent-replayed'), 'true')
    t.equal(again.data?.data.id, first.data?.data.id, 'the same user')
    t.equal(await usersWithEmail(user.email), 1)
    const other = await sdk.idempotentPost('/api/v1/users', { body: body() })
    t.not(sent[2].key, key, 'each call its own key')
    t.equal(other.response.status, 201)
    t.match(newIdempotencyKey(), UUID)
    // Only operations that take the key: the login issues tokens and never does.
    // @ts-expect-error not an idempotent path (never called: a type check)
    const typeOnly = () => sdk.idempotentPost('/api/v1/auth/login', { body: { email: 'x', password: 'y' } })
    t.type(typeOnly, 'function')
  })

  t.test('a lost answer is retried with the same key: the first run\'s answer, nothing done twice', async t => {
    // The first send reaches the service but its answer is lost while the service still works on
    // it: the retry finds it running (409 IDEMPOTENCY_IN_PROGRESS) and asks again until it is done.
    const original = app.usersService.create
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    app.usersService.create = async (...args) => { await gate; return original(...args) }
    t.teardown(() => { app.usersService.create = original })
    let first: Promise<Response> | undefined
    const sdk = createClient({
      baseUrl,
      tokens,
      retry: { maxAttempts: 5 },
      fetch: async request => {
        const key = request.headers.get('idempotency-key')
        if (!first) {
          first = fetch(request)
          sent.push({ key, status: null })
          await new Promise(resolve => setTimeout(resolve, 200))
          throw new TypeError('fetch failed')
        }
        const response = await fetch(request)
        sent.push({ key, status: response.status })
        if (response.status === 409) release()
        return response
      }
    })
    const user = body()
    const answer = await sdk.idempotentPost('/api/v1/users', { body: user })
    t.equal(answer.response.status, 201)
    t.equal(answer.response.headers.get('idempotent-replayed'), 'true', 'the stored answer of the first send')
    t.equal((await first!).status, 201, 'the first send did the work')
    const statuses = sent.map(s => s.status)
    t.equal(statuses[0], null, 'the first answer was lost')
    t.ok(statuses.length >= 3 && statuses.slice(1, -1).every(status => status === 409), `then in progress: ${statuses.join(', ')}`)
    t.equal(statuses.at(-1), 201, 'then the stored answer')
    t.equal(new Set(sent.map(s => s.key)).size, 1, 'one key on every attempt')
    t.equal(await usersWithEmail(user.email), 1, 'one user')
  })
})

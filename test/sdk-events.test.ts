// The SDK's event-stream helper (sdk/src/events.ts) against the live service over real HTTP.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { ApiError, createClient, type Event } from '../sdk/src/index.js'
import { as, build, createUser, PASSWORD, type TestUser } from './helper.js'

async function rename (app: FastifyInstance, admin: TestUser, id: string, firstName: string) {
  const res = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { firstName } })
  if (res.statusCode !== 200) throw new Error(`update: ${res.statusCode} ${res.body}`)
}

/** Takes events from the iterator until `count` matched, then stops it (which closes the connection). */
async function take (events: AsyncGenerator<Event>, count: number, match: (event: Event) => boolean) {
  const taken: Event[] = []
  for await (const event of events) {
    if (!match(event)) continue
    taken.push(event)
    if (taken.length === count) break
  }
  return taken
}

/** What the promise rejected with (undefined when it resolved). */
async function refusal (promise: Promise<unknown>) {
  try {
    await promise
  } catch (err) {
    return err
  }
  return undefined
}

const firstNameOf = (event: Event) => (event.data.changes as { firstName?: { to?: string } } | null)?.firstName?.to ?? JSON.stringify(event.data.changes)

t.test('client.events: typed events, resume after a given one, reconnect after a dropped connection', async t => {
  const app = await build(t)
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' })
  const admin = await createUser(app, { roles: ['admin'] })
  const subject = await createUser(app)
  const client = createClient({ baseUrl, retry: false })
  await client.login(admin.email, PASSWORD)
  const about = (event: Event) => event.type === 'user.updated' && event.data.userId === subject.id

  // The first connection is cut by the fetch below after its first event; the helper reconnects with Last-Event-ID.
  let connections = 0
  const sent: Array<string | null> = []
  const dropping = createClient({
    baseUrl,
    retry: false,
    tokens: client.tokens,
    fetch: async request => {
      connections++
      sent.push(request.headers.get('last-event-id'))
      const response = await fetch(request)
      if (connections > 1 || !response.body) return response
      const reader = response.body.getReader()
      let seenEvent = false
      // Passes bytes on until one event went through, then errors the body as a lost connection would.
      const body = new ReadableStream<Uint8Array>({
        async pull (controller) {
          if (seenEvent) {
            await reader.cancel()
            return controller.error(new TypeError('terminated'))
          }
          const { done, value } = await reader.read()
          if (done) return controller.close()
          if (new TextDecoder().decode(value).includes('event: ')) seenEvent = true
          controller.enqueue(value)
        }
      })
      return new Response(body, { status: response.status, headers: response.headers })
    }
  })

  const streamed = take(dropping.events({ types: ['user.updated'], retryDelayMs: 50 }), 3, about)
  // Give the stream a moment to open before the actions (a stream starts with what comes after it opened).
  await new Promise(resolve => setTimeout(resolve, 300))
  for (const name of ['One', 'Two', 'Three']) await rename(app, admin, subject.id, name)
  const events = await streamed
  t.same(events.map(firstNameOf).map(s => s.replace(/\W/g, '')).map(s => /One|Two|Three/.exec(s)?.[0]), ['One', 'Two', 'Three'], 'every event once, in order, across the reconnect')
  t.equal(connections, 2, 'one reconnect')
  t.equal(sent[0], null, 'the first connection sends no Last-Event-ID')
  t.equal(sent[1], events[0].id, 'the second resumes after the last event seen')

  // Starting after a given event: what came since.
  await rename(app, admin, subject.id, 'Four')
  const resumed = await take(client.events({ lastEventId: events[2].id, types: ['user.updated'] }), 1, about)
  t.match(firstNameOf(resumed[0]), /Four/, 'the next one after it')

  // A refusal is thrown, not retried.
  const anonymous = createClient({ baseUrl, retry: false })
  const noLogin = await refusal(take(anonymous.events(), 1, () => true))
  t.ok(noLogin instanceof ApiError && noLogin.status === 401, `no login: a 401 ApiError (${noLogin})`)
  const unknown = await refusal(take(client.events({ lastEventId: '00000000-0000-4000-8000-000000000000' }), 1, () => true))
  t.ok(unknown instanceof ApiError && unknown.code === 'VALIDATION_ERROR', `an unknown Last-Event-ID: a 400 ApiError (${unknown})`)

  // Aborting ends the iteration.
  const controller = new AbortController()
  const open = take(client.events({ signal: controller.signal }), 1, () => false)
  setTimeout(() => controller.abort(), 200)
  t.same(await open, [], 'the loop ends when the signal aborts')
})

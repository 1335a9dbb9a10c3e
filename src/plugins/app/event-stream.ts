import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { createEventHub, Subscriber, type EventSink, type Published } from '../../lib/event-hub.js'
import { buildSerializer } from '../../lib/serializer.js'
import { createResilientTtlCache } from '../../lib/ttl-cache.js'
import type { Actor } from '../../services/context.js'
import { createEventStreamService, type EventStreamService, type StreamEvent, type Viewer } from '../../services/event-stream.js'
import { EventSchema, type Event } from '../../../schemas/event.js'

/** The channel the events table's trigger notifies at commit: JSON with the event's id (and seq, type, userId, actorId). */
export const EVENTS_CHANNEL = 'events'

export interface StreamRequest {
  actor: Actor
  /** Only these event types; null: all. */
  types: ReadonlySet<string> | null
  /** The position (seq) a Last-Event-ID resolved to: the stream first sends what came after it. */
  resumeAfter: string | null
  sink: EventSink
  log: FastifyBaseLogger
}

declare module 'fastify' {
  interface FastifyInstance {
    eventStream: EventStreamService
    /** Starts delivering events to an open connection; resolves once it is registered. */
    subscribeEvents: (request: StreamRequest) => Subscriber<StreamEvent>
  }
}

// Queued events a subscriber has not checked yet; over this it is dropped like a full buffer.
const MAX_QUEUED = 1000
// Ids recently published: an event that arrives twice (a catch-up after the notification connection came back) goes out once.
const MAX_RECENT_IDS = 10_000

/**
 * Live events for the streams of this instance. The events table's trigger notifies every
 * instance at commit (PostgreSQL LISTEN/NOTIFY, on the embedded database too); this instance
 * reads the events named, once per batch of notifications and only while someone subscribes,
 * serializes each once and hands it to its subscribers (src/lib/event-hub.ts). On shutdown every
 * stream is ended first, so closing never waits on an open connection.
 */
export default fp(async function eventStream (fastify) {
  const { config, log } = fastify
  const service = createEventStreamService({
    db: fastify.database.db,
    events: fastify.eventsService,
    authStates: fastify.authStates,
    tickets: createResilientTtlCache<Viewer>(fastify.redis, 'event-ticket:', log),
    ticketTtlSec: config.eventTicketTtlSec
  })
  fastify.decorate('eventStream', service)
  const hub = createEventHub<StreamEvent>()
  // The response whitelist, as a route's: only the Event schema's fields leave.
  const serialize = buildSerializer(fastify.getSchemas(), {})({ schema: EventSchema, method: 'GET', url: '/api/v1/events', httpStatus: '200' }) as (event: Event) => string

  const recent = new Set<string>()
  let lastSeq: string | null = null
  function publish (events: StreamEvent[]) {
    for (const item of events) {
      if (recent.has(item.event.id)) continue
      if (recent.size >= MAX_RECENT_IDS) recent.delete(recent.values().next().value!)
      recent.add(item.event.id)
      if (lastSeq === null || BigInt(item.seq) > BigInt(lastSeq)) lastSeq = item.seq
      hub.publish({ event: item, id: item.event.id, json: serialize(item.event) })
    }
  }

  // Notifications are batched per turn of the event loop and read in order, one batch at a time.
  let pending: string[] = []
  let reading = Promise.resolve()
  const read = (load: () => Promise<void>) => {
    reading = reading.then(load).catch(err => log.error({ err }, 'reading events for the streams failed'))
  }
  function flush () {
    const ids = pending
    pending = []
    if (hub.size > 0) read(async () => publish(await service.byIds(ids)))
  }
  let listening = true
  await fastify.database.listen(EVENTS_CHANNEL, {
    onMessage (payload) {
      let id: unknown
      try { id = (JSON.parse(payload) as { id?: unknown }).id } catch {}
      if (typeof id !== 'string') return log.warn({ payload: payload.slice(0, 200) }, 'an events notification without an id')
      if (pending.push(id) === 1) setImmediate(flush)
    },
    onListening (now) {
      // Back after a lost connection: what was committed meanwhile was never announced.
      if (now && !listening && lastSeq !== null && hub.size > 0) {
        const from = lastSeq
        read(async () => { for await (const page of service.after(from, null)) publish(page) })
      }
      listening = now
    }
  })

  fastify.decorate('subscribeEvents', ({ actor, types, resumeAfter, sink, log: requestLog }: StreamRequest) => {
    const viewer = { userId: actor.id, sessionId: actor.sessionId! }
    const subscriber = new Subscriber<StreamEvent>({
      sink,
      typeOf: item => item.event.type,
      async admit (item) {
        if (types && !types.has(item.event.type)) return 'skip'
        // The login as it is now: a permission taken away applies to the next event, a logout ends the stream.
        const current = await service.currentActor(viewer)
        if (!current) return 'end'
        return service.visibleTo(current, item.event) ? 'deliver' : 'skip'
      },
      stillAllowed: async () => (await service.currentActor(viewer)) !== null,
      heartbeatMs: config.eventsHeartbeatMs,
      maxBufferBytes: config.eventsMaxBufferBytes,
      maxQueued: MAX_QUEUED,
      onError: err => requestLog.error({ err }, 'event stream failed')
    })
    hub.add(subscriber)
    if (resumeAfter !== null) {
      const typeList = types ? [...types] : null
      subscriber.replay((async function * () {
        for await (const page of service.after(resumeAfter, typeList)) {
          yield page.map((item): Published<StreamEvent> => ({ event: item, id: item.event.id, json: serialize(item.event) }))
        }
      })()).catch(err => requestLog.error({ err }, 'event stream failed'))
    }
    return subscriber
  })

  fastify.addHook('preClose', done => {
    hub.closeAll()
    done()
  })
}, { name: 'event-stream', dependencies: ['config', 'database', 'auth', 'redis', 'services'] })

import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { TSchema } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errors } from '../../schemas/common.js'
import {
  EventStreamHeadersSchema, EventStreamQuerySchema, EventStreamResponse, EventTicketResponseSchema, SwitchingProtocolsResponse,
  type EventStreamQuery
} from '../../schemas/event-stream.js'
import { notAcceptable, unauthorized, upgradeRequired } from '../errors.js'
import { SSE_HEADERS, sseSink, webSocketSink } from '../lib/event-sinks.js'
import type { StreamRequest } from '../plugins/app/event-stream.js'

type StreamPlan = Omit<StreamRequest, 'sink'>

declare module 'fastify' {
  interface FastifyRequest { streamPlan: StreamPlan | null }
}

const security = [{ bearerAuth: [] }]
const STREAM_QUERY = 'types filters by event type (comma list of audit actions). Last-Event-ID (header) or lastEventId (query) resumes ' +
  'after that event, sending what came since (within 24 h; an unknown or older id is 400). A caller with users:read sees every event, ' +
  'anyone else only the events about itself; the login is checked again at each event and heartbeat, and the stream ends when it ends ' +
  '(logout, suspension, deletion). A client that falls more than EVENTS_MAX_BUFFER bytes behind is disconnected and resumes with Last-Event-ID.'

// EventSource and fetch send text/event-stream (or nothing, or a wildcard); a client asking only for JSON gets 406.
const EVENT_STREAM = /(^|,)\s*(text\/event-stream|text\/\*|\*\/\*)\s*(;|,|$)/i
const acceptsEventStream = (accept: string | undefined) => !accept || EVENT_STREAM.test(accept)

const typesOf = (query: EventStreamQuery) => query.types ? new Set(query.types.split(',')) : null

const eventsRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, eventStream, subscribeEvents } = fastify
  fastify.decorateRequest('streamPlan', null)

  /** A Bearer token now, or a ticket (spent only once the request passed validation: see redeemTicket). */
  async function authenticateStream (request: FastifyRequest, reply: FastifyReply) {
    if ((request.query as EventStreamQuery).ticket === undefined) await authenticate.call(fastify, request, reply)
  }
  async function redeemTicket (request: FastifyRequest, reply: FastifyReply) {
    const { ticket } = request.query as EventStreamQuery
    if (ticket === undefined) return
    request.actor = await eventStream.redeemTicket(ticket)
    await fastify.limitUser(request, reply, request.actor.id)
  }

  /** Who streams what, from where: Last-Event-ID resolved first (400 when unknown), before anything is sent. */
  async function plan (request: FastifyRequest): Promise<StreamPlan> {
    const actor = request.actor
    if (!actor) throw unauthorized()
    const query = request.query as EventStreamQuery
    const lastEventId = (request.headers['last-event-id'] as string | undefined) ?? query.lastEventId
    const resumeAfter = lastEventId ? await eventStream.resumePoint(lastEventId) : null
    return { actor, types: typesOf(query), resumeAfter, log: request.log }
  }

  fastify.post('/ticket', {
    onRequest: authenticate,
    // A ticket stands for an existing login: it cannot invalidate any access token.
    config: { keepsAuthState: true },
    schema: {
      operationId: 'createEventTicket',
      tags: ['events'],
      summary: 'A ticket to open an event stream without an Authorization header',
      description: 'For browsers (EventSource, WebSocket), which cannot send headers: pass it as ?ticket= to GET /api/v1/events or ' +
        '/api/v1/events/ws. It stands for the caller\'s login, works once, on any instance, within 60 s.',
      security,
      // No body is read, but a malformed one sent anyway is 400 (the JSON parser runs first).
      response: { 200: EventTicketResponseSchema, ...errors(400, 401, 429) }
    }
  }, async request => ({ success: true as const, data: await eventStream.issueTicket(request.actor!) }))

  fastify.get('/', {
    onRequest: authenticateStream,
    preHandler: [
      async request => { if (!acceptsEventStream(request.headers.accept)) throw notAcceptable('This endpoint answers text/event-stream only') },
      redeemTicket
    ],
    // Anonymous callers try tickets here.
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'streamEvents',
      tags: ['events'],
      summary: 'The event stream (Server-Sent Events)',
      description: `Needs a Bearer token or ?ticket=. ${STREAM_QUERY}`,
      security: [{ bearerAuth: [] }, { eventTicket: [] }],
      querystring: EventStreamQuerySchema,
      headers: EventStreamHeadersSchema,
      response: { 200: EventStreamResponse as unknown as TSchema, ...errors(400, 401, 406, 429) }
    }
  }, async (request, reply) => {
    const stream = await plan(request)
    reply.hijack()
    reply.raw.writeHead(200, { ...reply.getHeaders(), ...SSE_HEADERS } as OutgoingHttpHeaders)
    // Sent at once, so the client (and any proxy) sees the stream open before the first event.
    reply.raw.write(': connected\n\n')
    const subscriber = subscribeEvents({ ...stream, sink: sseSink(reply.raw) })
    reply.raw.on('close', () => subscriber.end('drop'))
  })

  fastify.route({
    method: 'GET',
    url: '/ws',
    onRequest: authenticateStream,
    preHandler: [
      async request => { if (!request.ws) throw upgradeRequired() },
      redeemTicket,
      // Resolved before the upgrade, so a bad Last-Event-ID is an HTTP 400, not a closed socket.
      async request => { request.streamPlan = await plan(request) }
    ],
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'streamEventsWebSocket',
      tags: ['events'],
      summary: 'The event stream over a WebSocket',
      description: 'Connect with a WebSocket (Upgrade: websocket) and ?ticket= (or a Bearer token, for clients that can send it); one JSON ' +
        `text message per event. A plain GET is 426. ${STREAM_QUERY}`,
      security: [{ bearerAuth: [] }, { eventTicket: [] }],
      querystring: EventStreamQuerySchema,
      response: { 101: SwitchingProtocolsResponse, ...errors(400, 401, 426, 429) }
    },
    handler: async () => { throw upgradeRequired() },
    wsHandler: (socket, request) => {
      const subscriber = subscribeEvents({ ...request.streamPlan!, sink: webSocketSink(socket) })
      socket.on('close', () => subscriber.end('drop'))
    }
  })
}

export default eventsRoutes

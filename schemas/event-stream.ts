import { Type, type Static } from '@sinclair/typebox'
import { Success, Uuid } from './common.js'

const ACTION = '[a-z_]+\\.[a-z_]+'

const StreamQuery = {
  types: Type.Optional(Type.String({
    pattern: `^${ACTION}(,${ACTION})*$`,
    maxLength: 2000,
    description: 'Only events of these types (audit actions), comma-separated',
    examples: ['user.created,user.updated']
  })),
  lastEventId: Type.Optional(Uuid({ description: 'Resume after this event (within 24 h), as the Last-Event-ID header does; for clients that cannot send headers' })),
  ticket: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9_-]{43}$',
    maxLength: 43,
    description: 'A ticket from POST /api/v1/events/ticket, instead of the Authorization header (single use, 60 s)'
  }))
}

export const EventStreamQuerySchema = Type.Object(StreamQuery)
export type EventStreamQuery = Static<typeof EventStreamQuerySchema>

export const EventStreamHeadersSchema = Type.Object({
  'last-event-id': Type.Optional(Uuid({ description: 'Resume after this event (within 24 h); EventSource sends it when it reconnects' }))
})

export const EventTicketSchema = Type.Object({
  ticket: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', maxLength: 43, description: 'Pass as ?ticket= to GET /api/v1/events or /api/v1/events/ws; works once' }),
  expiresIn: Type.Integer({ format: 'int32', minimum: 1, maximum: 3600, description: 'Seconds it stays valid' })
})
export const EventTicketResponseSchema = Success(EventTicketSchema)

export const EventStreamResponse = {
  description: 'A Server-Sent Events stream that stays open: per event `id: <event id>`, `event: <type>`, `data: <the Event as JSON>`; ' +
    'a comment line (`: heartbeat`) every EVENTS_HEARTBEAT (15 s). The Event schema is components.schemas.Event.',
  content: { 'text/event-stream': { schema: { type: 'string', maxLength: 1_000_000_000, description: 'text/event-stream frames' } } }
}

export const SwitchingProtocolsResponse = Type.Null({
  description: 'Switching Protocols: the connection is a WebSocket; the server sends one JSON text message per event (the Event schema), ' +
    'pings as heartbeats, and closes with 1001 when it shuts down or 1008 when the login ends'
})

import { Type, type Static } from '@sinclair/typebox'
import { NextCursorSchema, Nullable, Success, Timestamp, Uuid } from './common.js'

/** An event type a webhook subscribes to (an audit action), or '*' for every one. */
const EventType = Type.String({ pattern: '^(\\*|[a-z_]+\\.[a-z_]+)$', maxLength: 100, description: 'An event type (audit action such as user.created), or * for every event' })
const Url = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048, description: 'http(s) URL the events are POSTed to; its host must not resolve to a loopback, private or link-local address unless WEBHOOK_ALLOW_PRIVATE=true' })
const Events = Type.Array(EventType, { minItems: 1, maxItems: 100, uniqueItems: true })
const Description = Type.String({ maxLength: 500 })

export const WebhookSchema = Type.Object({
  id: Uuid(),
  url: Type.String({ maxLength: 2048 }),
  events: Type.Array(Type.String({ maxLength: 100 }), { maxItems: 100 }),
  description: Nullable(Description),
  active: Type.Boolean(),
  consecutiveFailures: Type.Integer({ format: 'int32', minimum: 0, maximum: 2147483647, description: 'Failed attempts in a row; the circuit opens at WEBHOOK_CIRCUIT_THRESHOLD' }),
  circuitOpenUntil: Nullable(Timestamp({ description: 'While in the future, no attempt is made (the circuit breaker is open)' })),
  createdAt: Timestamp(),
  updatedAt: Timestamp()
}, { $id: 'Webhook', description: 'A webhook; its secret is only in the answers of create and rotate-secret' })
export type Webhook = Static<typeof WebhookSchema>

export const WebhookWithSecretSchema = Type.Object({
  ...WebhookSchema.properties,
  secret: Type.String({ pattern: '^whsec_[A-Za-z0-9+/=]+$', maxLength: 100, description: 'The signing secret (Standard Webhooks); shown only in this answer' })
}, { description: 'A webhook with its signing secret' })

export const WebhookCreateSchema = Type.Object({
  url: Url,
  events: Events,
  description: Type.Optional(Nullable(Description)),
  active: Type.Optional(Type.Boolean({ default: true }))
}, { additionalProperties: false })
export type WebhookCreate = Static<typeof WebhookCreateSchema>

export const WebhookPatchSchema = Type.Partial(WebhookCreateSchema, { additionalProperties: false, minProperties: 1 })
export type WebhookPatch = Static<typeof WebhookPatchSchema>

export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'] as const
export const WebhookDeliverySchema = Type.Object({
  id: Uuid(),
  eventId: Uuid(),
  eventType: Type.String({ maxLength: 100 }),
  status: Type.Union(DELIVERY_STATUSES.map(s => Type.Literal(s))),
  attempts: Type.Integer({ format: 'int32', minimum: 0, maximum: 2147483647 }),
  responseStatus: Nullable(Type.Integer({ format: 'int32', minimum: 100, maximum: 599, description: 'The status of the last attempt\'s answer' })),
  lastError: Nullable(Type.String({ maxLength: 500, description: 'Why the last attempt failed' })),
  lastAttemptAt: Nullable(Timestamp()),
  nextAttemptAt: Nullable(Timestamp({ description: 'When the next attempt is due; null once succeeded or failed' })),
  createdAt: Timestamp()
}, { $id: 'WebhookDelivery' })
export type WebhookDelivery = Static<typeof WebhookDeliverySchema> & { status: typeof DELIVERY_STATUSES[number] }

export const DeliveryParamsSchema = Type.Object({
  id: Uuid({ description: 'The webhook' }),
  deliveryId: Uuid({ description: 'The delivery' })
})

export const DeliveryListQuerySchema = Type.Object({
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque keyset cursor (nextCursor of a previous page)' })),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100, default: 20, description: 'Deliveries per page' })
})
export type DeliveryListQuery = Static<typeof DeliveryListQuerySchema>

export const DeliveryPaginationSchema = Type.Object({
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100 }),
  hasNext: Type.Boolean(),
  nextCursor: NextCursorSchema
})

export const WebhookResponseSchema = Success(Type.Ref(WebhookSchema))
export const WebhookWithSecretResponseSchema = Success(WebhookWithSecretSchema)
export const WebhookListResponseSchema = Success(Type.Array(Type.Ref(WebhookSchema), { maxItems: 100 }))
export const DeliveryResponseSchema = Success(Type.Ref(WebhookDeliverySchema))
export const DeliveryListResponseSchema = Success(Type.Array(Type.Ref(WebhookDeliverySchema), { maxItems: 100 }), { pagination: DeliveryPaginationSchema })

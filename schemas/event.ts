import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Timestamp, Uuid } from './common.js'
import { UserSchema } from './user.js'

/**
 * An event: every audit action is one (CONTRACT.md, "Webhooks and real-time events"), written in
 * the change's transaction (db/migrations/013_events_webhooks.up.sql). The body of a webhook
 * delivery and of a stream message.
 */
export const EventSchema = Type.Object({
  id: Uuid({ description: 'The event id (the id of the audit entry it comes from)' }),
  type: Type.String({ pattern: '^[a-z_]+\\.[a-z_]+$', maxLength: 100, description: 'The audit action', examples: ['user.updated'] }),
  createdAt: Timestamp(),
  data: Type.Object({
    userId: Nullable(Uuid({ description: 'The user acted upon' })),
    actorId: Nullable(Uuid({ description: 'The user acting; null when anonymous' })),
    changes: Type.Unknown({ description: 'What changed; never a password, hash or token' }),
    user: Type.Optional(Type.Ref(UserSchema, { description: 'The user as the change left it, when it exists (not erased)' }))
  })
}, { $id: 'Event' })
export type Event = Static<typeof EventSchema>

import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp, Uuid } from './common.js'

const EMAIL_TEMPLATES = ['verify_email', 'password_reset', 'invitation'] as const

export const CapturedEmailSchema = Type.Object({
  id: Uuid(),
  to: Type.String({ maxLength: 254 }),
  template: Type.Union(EMAIL_TEMPLATES.map(name => Type.Literal(name))),
  subject: Type.String({ maxLength: 200 }),
  text: Type.String({ maxLength: 10_000, description: 'The body as sent, links included' }),
  payload: Type.Record(Type.String(), Type.Unknown(), { description: 'What the template was given, the token included' }),
  createdAt: Timestamp(),
  sentAt: Nullable(Timestamp({ description: 'When the delivery job handled it; null while queued' }))
}, { $id: 'CapturedEmail' })
export type CapturedEmail = Static<typeof CapturedEmailSchema>

export const CapturedEmailsQuerySchema = Type.Object({
  to: Type.String({ format: 'email', minLength: 3, maxLength: 254, description: 'The recipient (compared case-insensitively)' }),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100, default: 20, description: 'Emails to return, newest first' })
})

export const CapturedEmailsResponseSchema = Success(Type.Array(Type.Ref(CapturedEmailSchema), { maxItems: 100 }))

import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp } from './common.js'

export const CapturedEmailSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  to: Type.String(),
  template: Type.String({ examples: ['verify_email', 'password_reset'] }),
  subject: Type.String(),
  text: Type.String({ description: 'The body as sent, links included' }),
  payload: Type.Record(Type.String(), Type.Unknown(), { description: 'What the template was given, the token included' }),
  createdAt: Timestamp(),
  sentAt: Nullable(Timestamp({ description: 'When the delivery job handled it; null while queued' }))
}, { $id: 'CapturedEmail' })
export type CapturedEmail = Static<typeof CapturedEmailSchema>

export const CapturedEmailsQuerySchema = Type.Object({
  to: Type.String({ format: 'email', minLength: 3, maxLength: 254, description: 'The recipient (compared case-insensitively)' }),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 })
})

export const CapturedEmailsResponseSchema = Success(Type.Array(Type.Ref(CapturedEmailSchema)))

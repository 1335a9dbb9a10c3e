import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp } from './common.js'

export const AuditLogEntrySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  action: Type.String({ examples: ['user.updated'] }),
  actorId: Nullable(Type.String({ format: 'uuid', description: 'The user acting; null when anonymous' })),
  userId: Nullable(Type.String({ format: 'uuid', description: 'The user acted upon' })),
  changes: Type.Unknown({ description: 'What changed; never a password, hash or token' }),
  ip: Nullable(Type.String()),
  userAgent: Nullable(Type.String()),
  requestId: Nullable(Type.String()),
  createdAt: Timestamp()
}, { $id: 'AuditLogEntry' })
export type AuditLogEntry = Static<typeof AuditLogEntrySchema>

export const AuditPaginationSchema = Type.Object({
  limit: Type.Integer(),
  hasNext: Type.Boolean(),
  nextCursor: Nullable(Type.String())
}, { $id: 'AuditPagination' })
export type AuditPagination = Static<typeof AuditPaginationSchema>

export const AuditListQuerySchema = Type.Object({
  userId: Type.Optional(Type.String({ format: 'uuid', description: 'The user acted upon' })),
  actorId: Type.Optional(Type.String({ format: 'uuid', description: 'The user acting' })),
  action: Type.Optional(Type.String({ pattern: '^[a-z_]+\\.[a-z_]+$', maxLength: 100, examples: ['auth.login'] })),
  from: Type.Optional(Timestamp({ description: 'Inclusive' })),
  to: Type.Optional(Timestamp({ description: 'Exclusive' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque keyset cursor (nextCursor of a previous page)' })),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 })
})
export type AuditListQuery = Static<typeof AuditListQuerySchema>

export const AuditListResponseSchema = Success(Type.Array(Type.Ref(AuditLogEntrySchema)), { pagination: Type.Ref(AuditPaginationSchema) })

import { Type, type Static } from '@sinclair/typebox'
import { NextCursorSchema, Nullable, RequestIdSchema, Success, Timestamp, UserAgentSchema, Uuid } from './common.js'

/** An audit action, `<resource>.<verb>` (the column's own check). */
const AuditAction = (options: { description?: string, examples?: string[] }) => Type.String({ pattern: '^[a-z_]+\\.[a-z_]+$', maxLength: 100, ...options })

export const AuditLogEntrySchema = Type.Object({
  id: Uuid(),
  action: AuditAction({ examples: ['user.updated'] }),
  actorId: Nullable(Uuid({ description: 'The user acting; null when anonymous' })),
  userId: Nullable(Uuid({ description: 'The user acted upon' })),
  changes: Type.Unknown({ description: 'What changed; never a password, hash or token' }),
  ip: Nullable(Type.String()),
  userAgent: Nullable(UserAgentSchema),
  requestId: Nullable(RequestIdSchema),
  createdAt: Timestamp()
}, { $id: 'AuditLogEntry' })
export type AuditLogEntry = Static<typeof AuditLogEntrySchema>

export const AuditPaginationSchema = Type.Object({
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100 }),
  hasNext: Type.Boolean(),
  nextCursor: NextCursorSchema
}, { $id: 'AuditPagination' })
export type AuditPagination = Static<typeof AuditPaginationSchema>

export const AuditListQuerySchema = Type.Object({
  userId: Type.Optional(Uuid({ description: 'The user acted upon' })),
  actorId: Type.Optional(Uuid({ description: 'The user acting' })),
  action: Type.Optional(AuditAction({ description: 'Only entries of this action', examples: ['auth.login'] })),
  from: Type.Optional(Timestamp({ description: 'Inclusive' })),
  to: Type.Optional(Timestamp({ description: 'Exclusive' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque keyset cursor (nextCursor of a previous page)' })),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100, default: 20, description: 'Entries per page' })
})
export type AuditListQuery = Static<typeof AuditListQuerySchema>

export const AuditListResponseSchema = Success(Type.Array(Type.Ref(AuditLogEntrySchema), { maxItems: 100 }), { pagination: Type.Ref(AuditPaginationSchema) })

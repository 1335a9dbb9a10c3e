import { Type, type Static } from '@sinclair/typebox'
import { NewPassword, OpaqueToken } from './auth.js'
import { AuditPaginationSchema } from './audit.js'
import { Success, Timestamp, Uuid } from './common.js'
import { Email, Name, RoleName, UserRoleNamesSchema } from './user.js'

export const InvitationSchema = Type.Object({
  id: Uuid(),
  email: Type.String({ maxLength: 254, description: 'Lower-cased' }),
  roles: UserRoleNamesSchema,
  expiresAt: Timestamp({ description: '7 days after it was made' }),
  createdAt: Timestamp()
}, { $id: 'Invitation' })
export type Invitation = Static<typeof InvitationSchema>

export const InvitationCreateSchema = Type.Object({
  email: Email,
  firstName: Type.Optional(Name),
  lastName: Type.Optional(Name),
  roles: Type.Optional(Type.Array(RoleName, { maxItems: 20, uniqueItems: true, description: 'Role names (default ["user"]); setting them needs roles:manage' }))
}, { additionalProperties: false })
export type InvitationCreate = Static<typeof InvitationCreateSchema>

export const InvitationListQuerySchema = Type.Object({
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque keyset cursor (nextCursor of a previous page)' })),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100, default: 20, description: 'Invitations per page' })
})
export type InvitationListQuery = Static<typeof InvitationListQuerySchema>

export const InvitationAcceptSchema = Type.Object({
  token: OpaqueToken('The token from the invitation email'),
  password: NewPassword,
  firstName: Type.Optional(Name),
  lastName: Type.Optional(Name)
}, { additionalProperties: false })
export type InvitationAccept = Static<typeof InvitationAcceptSchema>

export const InvitationResponseSchema = Success(Type.Ref(InvitationSchema))
export const InvitationListResponseSchema = Success(Type.Array(Type.Ref(InvitationSchema), { maxItems: 100 }), { pagination: Type.Ref(AuditPaginationSchema) })

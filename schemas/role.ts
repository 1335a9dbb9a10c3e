import { Type, type Static } from '@sinclair/typebox'
import { Success, Timestamp, Uuid } from './common.js'
import { PERMISSIONS, PermissionSchema, type Permission } from './auth.js'

const RoleName = Type.String({ pattern: '^[a-z][a-z0-9_-]{1,49}$', maxLength: 50, description: '2 to 50 characters: lower-case letters, digits, _ and -, starting with a letter' })

export const RoleSchema = Type.Object({
  id: Uuid(),
  name: Type.String({ pattern: '^[a-z][a-z0-9_-]{1,49}$', maxLength: 50 }),
  description: Type.String({ maxLength: 500 }),
  permissions: Type.Array(Type.Ref(PermissionSchema), { maxItems: PERMISSIONS.length }),
  builtIn: Type.Boolean({ description: 'Built-in roles (admin, user) cannot be changed or deleted' }),
  createdAt: Timestamp(),
  updatedAt: Timestamp()
}, { $id: 'Role' })
export type Role = Static<typeof RoleSchema> & { permissions: Permission[] }

/** A role as written by POST (create) and PUT (full replacement). */
export const RoleInputSchema = Type.Object({
  name: RoleName,
  description: Type.Optional(Type.String({ maxLength: 500, default: '' })),
  // An enum rather than the Permission $ref: an unknown permission then fails with one clear message.
  permissions: Type.Array(Type.Unsafe<Permission>({ type: 'string', enum: [...PERMISSIONS] }), { maxItems: PERMISSIONS.length, uniqueItems: true })
}, { additionalProperties: false })
export type RoleInput = Static<typeof RoleInputSchema>

export const RoleResponseSchema = Success(Type.Ref(RoleSchema))
export const RoleListResponseSchema = Success(Type.Array(Type.Ref(RoleSchema)))

import { Type, type Static } from '@sinclair/typebox'
import { NextCursorSchema, Nullable, Success, Timestamp, UserAgentSchema, Uuid } from './common.js'
import { AuditLogEntrySchema } from './audit.js'
import { ConsentChangeSchema } from './consent.js'

export const USER_STATUSES = ['active', 'suspended', 'pending'] as const
export const UserStatusSchema = Type.Union(USER_STATUSES.map(s => Type.Literal(s)), { $id: 'UserStatus' })
export type UserStatus = typeof USER_STATUSES[number]

// The longest value each profile column holds (db/migrations/001_init.up.sql).
export const ProfileSchema = Type.Object({
  bio: Nullable(Type.String({ maxLength: 2000 })),
  avatarUrl: Nullable(Type.String({ maxLength: 2048 })),
  phone: Nullable(Type.String({ maxLength: 32 })),
  locale: Nullable(Type.String({ maxLength: 35 })),
  timezone: Nullable(Type.String({ maxLength: 64 }))
}, { $id: 'Profile' })
export type Profile = Static<typeof ProfileSchema>

/** What a client may write into a profile; every field optional (PUT replaces, PATCH merges). */
export const ProfileInputSchema = Type.Object({
  bio: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
  avatarUrl: Type.Optional(Nullable(Type.String({ format: 'uri', maxLength: 2048, pattern: '^https?://' }))),
  phone: Type.Optional(Nullable(Type.String({ pattern: '^\\+?[0-9 ().-]{3,32}$', maxLength: 32 }))),
  locale: Type.Optional(Nullable(Type.String({ pattern: '^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$', maxLength: 35 }))),
  timezone: Type.Optional(Nullable(Type.String({ pattern: '^[A-Za-z0-9_+./-]{1,64}$', maxLength: 64 })))
}, { additionalProperties: false })
export type ProfileInput = Static<typeof ProfileInputSchema>

/** A role's name as stored (roles.name). */
const RoleNameOut = Type.String({ pattern: '^[a-z][a-z0-9_-]{1,49}$', maxLength: 50 })
/** The roles a user holds: every write that sets them takes at most 20. */
export const UserRoleNamesSchema = Type.Array(RoleNameOut, { maxItems: 20 })

export const UserSchema = Type.Object({
  id: Uuid(),
  email: Type.String({ format: 'email', maxLength: 254 }),
  firstName: Type.String({ maxLength: 100 }),
  lastName: Type.String({ maxLength: 100 }),
  status: Type.Ref(UserStatusSchema),
  emailVerified: Type.Boolean(),
  roles: UserRoleNamesSchema,
  profile: Nullable(Type.Ref(ProfileSchema)),
  lastLoginAt: Nullable(Timestamp()),
  createdAt: Timestamp(),
  updatedAt: Timestamp(),
  deletedAt: Type.Optional(Nullable(Timestamp()))
}, { $id: 'User', description: 'A user; never contains a password or hash' })
export type User = Static<typeof UserSchema> & { status: UserStatus }

export const USER_FIELDS = ['id', 'email', 'firstName', 'lastName', 'status', 'emailVerified', 'roles', 'profile',
  'lastLoginAt', 'createdAt', 'updatedAt', 'deletedAt'] as const
export type UserField = typeof USER_FIELDS[number]

/** A user reduced to the fields a list asked for (`fields`). */
export const UserFieldsSchema = Type.Partial(Type.Omit(UserSchema, []), { $id: 'UserFields', description: 'A user with only the requested fields' })

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 })
export const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })
export const Password = Type.String({ minLength: 1, maxLength: 1024, description: '8 to 128 characters with a lower-case letter, an upper-case letter and a digit; not the email' })
export const RoleName = Type.String({ minLength: 1, maxLength: 50 })

export const UserCreateSchema = Type.Object({
  email: Email,
  password: Password,
  firstName: Name,
  lastName: Name,
  roles: Type.Optional(Type.Array(RoleName, { maxItems: 20, uniqueItems: true })),
  status: Type.Optional(Type.Ref(UserStatusSchema)),
  profile: Type.Optional(Nullable(ProfileInputSchema))
}, { additionalProperties: false })
export type UserCreate = Static<typeof UserCreateSchema>

export const UserReplaceSchema = Type.Object({
  email: Email,
  firstName: Name,
  lastName: Name,
  profile: Nullable(ProfileInputSchema),
  roles: Type.Optional(Type.Array(RoleName, { maxItems: 20, uniqueItems: true })),
  status: Type.Optional(Type.Ref(UserStatusSchema))
}, { additionalProperties: false })
export type UserReplace = Static<typeof UserReplaceSchema>

export const UserPatchSchema = Type.Object({
  email: Type.Optional(Email),
  firstName: Type.Optional(Name),
  lastName: Type.Optional(Name),
  profile: Type.Optional(Nullable(ProfileInputSchema)),
  roles: Type.Optional(Type.Array(RoleName, { maxItems: 20, uniqueItems: true })),
  status: Type.Optional(Type.Ref(UserStatusSchema))
}, { additionalProperties: false })
export type UserPatch = Static<typeof UserPatchSchema>

export const UserRolesSchema = Type.Object({
  roles: Type.Array(RoleName, { maxItems: 20, uniqueItems: true })
}, { additionalProperties: false })

export const USER_SORTS = ['createdAt', '-createdAt', 'email', '-email', 'lastName', '-lastName', 'relevance'] as const
export type UserSort = typeof USER_SORTS[number]

export const UserListQuerySchema = Type.Object({
  page: Type.Integer({ format: 'int32', minimum: 1, maximum: 1_000_000, default: 1, description: 'Page number, from 1 (page mode; ignored with cursor)' }),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100, default: 20, description: 'Users per page' }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Opaque keyset cursor (nextCursor of a previous page)' })),
  sort: Type.Union(USER_SORTS.map(s => Type.Literal(s)), {
    default: 'createdAt',
    description: 'Order: a field, descending with a leading -; or relevance (only with q: how well a user matches, best first, ties by id; ' +
      'keyset paging works with it too, the cursor carrying the last score). relevance without q is 400.'
  }),
  q: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 100,
    description: 'Search; every term must match (case-insensitive substring): plain words and "quoted phrases" (in email, first and last name), ' +
      'email:<text>, name:<text> (first or last name) and phone:<text>, whose text may be quoted (name:"Mary Ann"). At most 8 terms.'
  })),
  fuzzy: Type.Boolean({
    default: false,
    description: 'With q: plain words also match with typos (trigram word similarity of at least 0.3, or a swap of two neighbouring letters: jhon finds John). ' +
      'Without q it is 400.'
  }),
  role: Type.Optional(Type.String({ minLength: 1, maxLength: 50, description: 'Only users holding this role' })),
  status: Type.Optional(Type.Union(USER_STATUSES.map(s => Type.Literal(s)), { description: 'Only users with this status' })),
  emailVerified: Type.Optional(Type.Boolean({ description: 'Only users whose email is (true) or is not (false) verified' })),
  createdAfter: Type.Optional(Timestamp({ description: 'Exclusive' })),
  createdBefore: Type.Optional(Timestamp({ description: 'Exclusive' })),
  includeDeleted: Type.Boolean({ default: false, description: 'Also list soft-deleted users (with deletedAt)' }),
  fields: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: `Comma list of: ${USER_FIELDS.join(', ')}` }))
})
export type UserListQuery = Static<typeof UserListQuerySchema> & { sort: UserSort, status?: UserStatus }

/** A count of rows: at most what a JSON number carries exactly. */
const Count = Type.Integer({ format: 'int64', minimum: 0, maximum: Number.MAX_SAFE_INTEGER })

export const PaginationSchema = Type.Object({
  page: Nullable(Type.Integer({ format: 'int32', minimum: 1, maximum: 1_000_000 })),
  limit: Type.Integer({ format: 'int32', minimum: 1, maximum: 100 }),
  total: Nullable(Count),
  totalPages: Nullable(Count),
  hasNext: Type.Boolean(),
  nextCursor: NextCursorSchema
}, { $id: 'Pagination' })
export type Pagination = Static<typeof PaginationSchema>

export const UserResponseSchema = Success(Type.Ref(UserSchema))
export const UserListResponseSchema = Success(Type.Array(Type.Ref(UserFieldsSchema), { maxItems: 100 }), { pagination: Type.Ref(PaginationSchema) })
export const ProfileResponseSchema = Success(Type.Ref(ProfileSchema))

export const UserExportSchema = Type.Object({
  user: Type.Ref(UserSchema),
  profile: Nullable(Type.Ref(ProfileSchema)),
  roles: UserRoleNamesSchema,
  sessions: Type.Array(Type.Object({
    id: Uuid(),
    createdAt: Timestamp(),
    lastUsedAt: Timestamp(),
    expiresAt: Timestamp(),
    revokedAt: Nullable(Timestamp()),
    userAgent: Nullable(UserAgentSchema),
    ip: Nullable(Type.String())
  })),
  // Whether second factors are enrolled; never a secret or a code.
  mfa: Type.Object({
    totp: Type.Boolean(),
    recoveryCodesLeft: Type.Integer({ format: 'int32', minimum: 0, maximum: 10 })
  }),
  // At most the 10,000 newest entries (src/services/users.ts, exportData).
  auditTrail: Type.Array(Type.Ref(AuditLogEntrySchema), { maxItems: 10_000 }),
  // Every consent change, oldest first (the current state is the latest per purpose).
  consents: Type.Array(Type.Ref(ConsentChangeSchema), { maxItems: 10_000 }),
  // The sign-in providers linked (never a provider's token: none is kept).
  identities: Type.Array(Type.Object({
    id: Uuid(),
    provider: Type.String({ maxLength: 50 }),
    subject: Type.String({ maxLength: 255 }),
    email: Nullable(Type.String({ maxLength: 254 })),
    createdAt: Timestamp()
  }), { maxItems: 100 }),
  // Never the public key, the credential id or the signature counter.
  passkeys: Type.Array(Type.Object({
    id: Uuid(),
    name: Type.String({ maxLength: 100 }),
    transports: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 }),
    createdAt: Timestamp(),
    lastUsedAt: Nullable(Timestamp())
  }), { maxItems: 100 }),
  // The invitations addressed to the user's email or accepted by it (received), and those it sent
  // (sent); never a token or its hash.
  invitations: Type.Array(Type.Object({
    id: Uuid(),
    direction: Type.Union([Type.Literal('received'), Type.Literal('sent')]),
    email: Type.String({ maxLength: 254 }),
    firstName: Nullable(Type.String({ maxLength: 100 })),
    lastName: Nullable(Type.String({ maxLength: 100 })),
    roles: UserRoleNamesSchema,
    createdAt: Timestamp(),
    expiresAt: Timestamp(),
    acceptedAt: Nullable(Timestamp()),
    revokedAt: Nullable(Timestamp())
  }), { maxItems: 10_000 })
}, { $id: 'UserExport' })

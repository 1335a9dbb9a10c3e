import { Type, type Static } from '@sinclair/typebox'
import { ErrorDetailSchema, Success, Timestamp } from './common.js'
import { UserCreateSchema, UserSchema } from './user.js'

/** The most operations one batch, or users one import, takes. */
export const BULK_MAX = 1000

const Index = Type.Integer({ format: 'int32', minimum: 0, maximum: BULK_MAX - 1, description: 'Position in the request, from 0' })

/** What a failed item answers: the error envelope's `error` without the request id (the whole answer's). */
export const ItemErrorSchema = Type.Object({
  code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', maxLength: 64 }),
  message: Type.String({ maxLength: 500 }),
  details: Type.Optional(Type.Array(Type.Ref(ErrorDetailSchema), { maxItems: 100 }))
}, { $id: 'ItemError' })
export type ItemError = Static<typeof ItemErrorSchema>

export const BATCH_OPS = ['create', 'update', 'delete', 'restore'] as const
export type BatchOp = typeof BATCH_OPS[number]

export const UserBatchOperationSchema = Type.Object({
  op: Type.Union(BATCH_OPS.map(op => Type.Literal(op))),
  // Checked per operation, as the single request checks its path: a malformed id is that operation's 400.
  id: Type.Optional(Type.String({ maxLength: 100, description: 'The user (update, delete, restore), a UUID; not given for create' })),
  body: Type.Optional(Type.Object({}, {
    additionalProperties: true,
    description: 'create: the body of POST /api/v1/users; update: a JSON merge patch as for PATCH /api/v1/users/{id}; ' +
      'not given for delete and restore. Checked per operation against the single request\'s schema: a bad one is that operation\'s 400'
  }))
}, { additionalProperties: false })
export type UserBatchOperation = Static<typeof UserBatchOperationSchema>

export const UserBatchSchema = Type.Object({
  atomic: Type.Optional(Type.Boolean({ default: false, description: 'All or nothing: when any operation fails, none is applied (400 BATCH_FAILED)' })),
  operations: Type.Array(UserBatchOperationSchema, { minItems: 1, maxItems: BULK_MAX })
}, { additionalProperties: false })
export type UserBatch = Static<typeof UserBatchSchema>

export const UserBatchResultSchema = Type.Object({
  index: Index,
  status: Type.Integer({ format: 'int32', minimum: 200, maximum: 599, description: 'The status the single request would have answered' }),
  data: Type.Optional(Type.Ref(UserSchema)),
  error: Type.Optional(Type.Ref(ItemErrorSchema))
})
export type UserBatchResult = Static<typeof UserBatchResultSchema>

export const UserBatchResponseSchema = Success(Type.Object({
  results: Type.Array(UserBatchResultSchema, { maxItems: BULK_MAX })
}))

const { password, ...createFields } = UserCreateSchema.properties

export const UserImportEntrySchema = Type.Object({
  ...createFields,
  password: Type.Optional(password),
  passwordHash: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 1024,
    description: 'Kept as it is: bcrypt ($2a$, $2b$, $2y$), scrypt or argon2i/argon2id in PHC format, or pbkdf2_sha256$iterations$salt$hash'
  })),
  emailVerified: Type.Optional(Type.Boolean({ description: 'Default false; no verification email is sent either way' })),
  createdAt: Type.Optional(Timestamp({ description: 'When the account was created in the system it comes from; default now' }))
}, { additionalProperties: false })
export type UserImportEntry = Static<typeof UserImportEntrySchema>

export const IMPORT_CONFLICTS = ['fail', 'skip', 'update'] as const

export const UserImportSchema = Type.Object({
  users: Type.Array(UserImportEntrySchema, { minItems: 1, maxItems: BULK_MAX }),
  onConflict: Type.Optional(Type.Union(IMPORT_CONFLICTS.map(c => Type.Literal(c)), {
    default: 'fail',
    description: 'A user whose email a live user holds: fail lists it in failed (409 EMAIL_TAKEN), skip counts it in skipped, update changes that user'
  }))
}, { additionalProperties: false })
export type UserImport = Static<typeof UserImportSchema>

const Count = Type.Integer({ format: 'int32', minimum: 0, maximum: BULK_MAX })

export const UserImportResultSchema = Type.Object({
  created: Count,
  updated: Count,
  skipped: Count,
  failed: Type.Array(Type.Object({ index: Index, error: Type.Ref(ItemErrorSchema) }), { maxItems: BULK_MAX })
})
export type UserImportResult = Static<typeof UserImportResultSchema>

export const UserImportResponseSchema = Success(UserImportResultSchema)

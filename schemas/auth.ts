import { Type, type Static } from '@sinclair/typebox'
import { Success, Timestamp, Nullable, UserAgentSchema, Uuid } from './common.js'
import { RegistrationConsentsSchema } from './consent.js'
import { ProfileSchema, UserSchema, UserStatusSchema } from './user.js'

export const PERMISSIONS = ['users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read', 'webhooks:manage', 'analytics:read'] as const
export type Permission = typeof PERMISSIONS[number]
export const PermissionSchema = Type.Union(PERMISSIONS.map(p => Type.Literal(p)), { $id: 'Permission' })

export const LoginSchema = Type.Object({
  email: Type.String({ minLength: 1, maxLength: 254 }),
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })
export type Login = Static<typeof LoginSchema>

export const TokenPairSchema = Type.Object({
  accessToken: Type.String({ pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', description: 'A JWT (HS256); send it as Authorization: Bearer' }),
  refreshToken: Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: 512, description: 'Opaque (base64url); single use' }),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ format: 'int64', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Access token lifetime in seconds (JWT_EXPIRY)' }),
  user: Type.Ref(UserSchema)
}, { $id: 'TokenPair' })
export type TokenPair = Static<typeof TokenPairSchema>

export const MeSchema = Type.Composite([Type.Omit(UserSchema, ['status', 'profile']), Type.Object({
  status: Type.Ref(UserStatusSchema),
  profile: Nullable(Type.Ref(ProfileSchema)),
  permissions: Type.Array(Type.Ref(PermissionSchema), { maxItems: PERMISSIONS.length })
})], { $id: 'Me' })

export const TokenPairResponseSchema = Success(Type.Ref(TokenPairSchema))
export const MeResponseSchema = Success(Type.Ref(MeSchema))

const PASSWORD_RULES = '8 to 128 characters with a lower-case letter, an upper-case letter and a digit; not the email, not a well-known common password, and (with PASSWORD_BREACH_CHECK_URL) not a breached one'
export const NewPassword = Type.String({ minLength: 1, maxLength: 1024, description: PASSWORD_RULES })
export const OpaqueToken = (description: string) => Type.String({ minLength: 1, maxLength: 512, description })

export const RegisterSchema = Type.Object({
  email: Type.String({ format: 'email', minLength: 3, maxLength: 254 }),
  password: NewPassword,
  firstName: Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }),
  lastName: Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }),
  consents: Type.Optional(RegistrationConsentsSchema)
}, { additionalProperties: false })
export type Register = Static<typeof RegisterSchema>

export const SessionSchema = Type.Object({
  id: Uuid(),
  createdAt: Timestamp(),
  lastUsedAt: Timestamp(),
  userAgent: Nullable(UserAgentSchema),
  ip: Nullable(Type.String()),
  current: Type.Boolean()
}, { $id: 'Session' })
export type Session = Static<typeof SessionSchema>
export const SessionListResponseSchema = Success(Type.Array(Type.Ref(SessionSchema)))

export const RefreshTokenBodySchema = Type.Object({
  refreshToken: OpaqueToken('The refresh token of a login')
}, { additionalProperties: false })
export type RefreshTokenBody = Static<typeof RefreshTokenBodySchema>

export const ForgotPasswordSchema = Type.Object({
  email: Type.String({ format: 'email', minLength: 3, maxLength: 254 })
}, { additionalProperties: false })

export const ResetPasswordSchema = Type.Object({
  token: OpaqueToken('The token from the password reset email'),
  password: NewPassword
}, { additionalProperties: false })

export const ChangePasswordSchema = Type.Object({
  currentPassword: Type.String({ minLength: 1, maxLength: 1024 }),
  newPassword: NewPassword
}, { additionalProperties: false })

export const VerifyEmailSchema = Type.Object({
  token: OpaqueToken('The token from the verification email')
}, { additionalProperties: false })

/** 202: the request is taken; what happens next (an email, or nothing) is deliberately not said. */
export const AcceptedResponseSchema = Type.Object({
  success: Type.Literal(true),
  data: Type.Null(),
  message: Type.String({ maxLength: 500 })
}, { description: 'Accepted' })

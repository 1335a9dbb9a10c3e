import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp, Uuid } from './common.js'
import { TokenPairSchema } from './auth.js'
import { AuthenticationResponseSchema } from './passkeys.js'

/** The second factors a login can be completed with. */
export const MFA_METHODS = ['totp', 'recovery_code', 'passkey'] as const
export type MfaMethod = typeof MFA_METHODS[number]

/** 256 random bits, base64url, as every other token the API issues. */
const MfaToken = Type.String({ pattern: '^[A-Za-z0-9_-]+$', minLength: 1, maxLength: 512, description: 'The single-use token of a login awaiting its second factor' })

/** The answer of a login whose password was right when the user has a second factor enrolled. */
export const MfaChallengeSchema = Type.Object({
  mfaRequired: Type.Literal(true),
  mfaToken: MfaToken,
  expiresIn: Type.Integer({ format: 'int64', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Seconds the mfaToken stays usable (MFA_TOKEN_TTL, 5 min)' }),
  methods: Type.Array(Type.Union(MFA_METHODS.map(m => Type.Literal(m))), { maxItems: MFA_METHODS.length, description: 'What POST /auth/mfa/verify accepts for this user' })
}, { $id: 'MfaChallenge' })
export type MfaChallenge = Static<typeof MfaChallengeSchema>

/** A login's answer: the token pair, or, with a second factor enrolled, the challenge to answer first. */
export const LoginResponseSchema = Success(Type.Union([Type.Ref(TokenPairSchema), Type.Ref(MfaChallengeSchema)]))

export const MfaStatusSchema = Type.Object({
  totp: Type.Boolean({ description: 'Whether a confirmed TOTP authenticator is enrolled' }),
  recoveryCodesLeft: Type.Integer({ format: 'int32', minimum: 0, maximum: 10 }),
  passkeys: Type.Array(Type.Object({
    id: Uuid(),
    name: Type.String({ maxLength: 100 }),
    createdAt: Timestamp(),
    lastUsedAt: Nullable(Timestamp())
  }), { maxItems: 100 })
}, { $id: 'MfaStatus' })
export type MfaStatus = Static<typeof MfaStatusSchema>
export const MfaStatusResponseSchema = Success(Type.Ref(MfaStatusSchema))

export const TotpSetupSchema = Type.Object({
  secret: Type.String({ pattern: '^[A-Z2-7]+=*$', maxLength: 128, description: 'Base32; for typing into an authenticator by hand' }),
  otpauthUrl: Type.String({ maxLength: 2048, description: 'The otpauth://totp/ URI the QR code holds' }),
  qrSvg: Type.String({ maxLength: 200_000, description: 'The otpauth URI as a QR code, an SVG document' })
})
export const TotpSetupResponseSchema = Success(TotpSetupSchema)

export const RecoveryCodesResponseSchema = Success(Type.Object({
  recoveryCodes: Type.Array(Type.String({ maxLength: 32 }), { minItems: 10, maxItems: 10, description: 'Single-use codes, shown this once' })
}))

const Code = (description: string) => Type.String({ minLength: 1, maxLength: 64, description })

export const TotpCodeSchema = Type.Object({
  code: Code('The 6-digit code the authenticator shows now')
}, { additionalProperties: false })

export const MfaCodeSchema = Type.Object({
  code: Code('A 6-digit TOTP code or an unused recovery code')
}, { additionalProperties: false })

/** Exactly one factor besides the token; which one is checked by the service (a clearer 400 than a failed anyOf). */
export const MfaVerifySchema = Type.Object({
  mfaToken: MfaToken,
  code: Type.Optional(Code('The 6-digit code of the TOTP authenticator')),
  recoveryCode: Type.Optional(Code('An unused recovery code')),
  passkey: Type.Optional(Type.Ref(AuthenticationResponseSchema, { description: 'A passkey assertion for options from POST /auth/passkeys/login/options with this mfaToken' }))
}, { additionalProperties: false })
export type MfaVerify = Static<typeof MfaVerifySchema>

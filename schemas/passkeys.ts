import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp, Uuid } from './common.js'

/**
 * Passkeys (WebAuthn). The ceremony objects follow @simplewebauthn's JSON forms
 * (PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON, ...): binary values are
 * base64url strings. What the service reads of a browser's answer is validated here; members a
 * browser may add in the future are let through (and ignored) rather than refused.
 */

const Base64Url = (maxLength: number, description?: string) =>
  Type.String({ pattern: '^[A-Za-z0-9_-]*$', maxLength, ...(description ? { description } : {}) })
/** A credential id: at most 1023 bytes (WebAuthn), so at most 1364 base64url characters. */
const CredentialId = (description?: string) => Type.String({ pattern: '^[A-Za-z0-9_-]+$', minLength: 1, maxLength: 1366, ...(description ? { description } : {}) })
const Transports = Type.Array(Type.String({ pattern: '^[a-z-]{1,32}$', maxLength: 32 }), { maxItems: 10, description: 'AuthenticatorTransport values (usb, nfc, ble, hybrid, internal, ...)' })
const PublicKeyType = Type.Literal('public-key')
const AuthenticatorAttachment = Type.Union([Type.Literal('platform'), Type.Literal('cross-platform')])
const ClientExtensionResults = Type.Object({}, { description: 'The client extension results (credProps, ...), passed to the verification as they are' })
const UserVerification = Type.Union([Type.Literal('required'), Type.Literal('preferred'), Type.Literal('discouraged')])

export const PasskeySchema = Type.Object({
  id: Uuid(),
  name: Type.String({ minLength: 1, maxLength: 100 }),
  createdAt: Timestamp(),
  lastUsedAt: Nullable(Timestamp({ description: 'The last sign-in with it; null until then' }))
}, { $id: 'Passkey', description: 'A registered passkey; its key material is never returned' })
export type Passkey = Static<typeof PasskeySchema>
export const PasskeyResponseSchema = Success(Type.Ref(PasskeySchema))

const CredentialDescriptor = Type.Object({
  id: CredentialId(),
  type: PublicKeyType,
  transports: Type.Optional(Transports)
})

export const RegistrationOptionsSchema = Type.Object({
  challenge: Base64Url(128),
  rp: Type.Object({ name: Type.String({ maxLength: 100 }), id: Type.Optional(Type.String({ maxLength: 253 })) }),
  user: Type.Object({
    id: Base64Url(128, 'The user handle (the user id\'s 16 bytes)'),
    name: Type.String({ maxLength: 254 }),
    displayName: Type.String({ maxLength: 201 })
  }),
  pubKeyCredParams: Type.Array(Type.Object({
    alg: Type.Integer({ format: 'int32', minimum: -65536, maximum: 65535, description: 'A COSE algorithm identifier' }),
    type: PublicKeyType
  }), { maxItems: 10 }),
  timeout: Type.Optional(Type.Integer({ format: 'int32', minimum: 0, maximum: 600_000, description: 'Milliseconds' })),
  excludeCredentials: Type.Optional(Type.Array(CredentialDescriptor, { maxItems: 100, description: 'The passkeys the user already has' })),
  authenticatorSelection: Type.Optional(Type.Object({
    authenticatorAttachment: Type.Optional(AuthenticatorAttachment),
    residentKey: Type.Optional(UserVerification),
    requireResidentKey: Type.Optional(Type.Boolean()),
    userVerification: Type.Optional(UserVerification)
  })),
  hints: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 3 })),
  attestation: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('indirect'), Type.Literal('direct'), Type.Literal('enterprise')])),
  extensions: Type.Optional(Type.Object({ credProps: Type.Optional(Type.Boolean()) }))
}, { $id: 'PasskeyRegistrationOptions', description: 'PublicKeyCredentialCreationOptionsJSON: pass to navigator.credentials.create (after decoding, or through @simplewebauthn/browser startRegistration)' })
export const RegistrationOptionsResponseSchema = Success(Type.Ref(RegistrationOptionsSchema))

export const AuthenticationOptionsSchema = Type.Object({
  rpId: Type.Optional(Type.String({ maxLength: 253 })),
  challenge: Base64Url(128),
  allowCredentials: Type.Optional(Type.Array(CredentialDescriptor, { maxItems: 100, description: 'Absent for a discoverable-credential login (no email given)' })),
  timeout: Type.Optional(Type.Integer({ format: 'int32', minimum: 0, maximum: 600_000, description: 'Milliseconds' })),
  userVerification: Type.Optional(UserVerification)
}, { $id: 'PasskeyAuthenticationOptions', description: 'PublicKeyCredentialRequestOptionsJSON: pass to navigator.credentials.get (or @simplewebauthn/browser startAuthentication)' })

export const LoginOptionsSchema = Type.Object({
  challengeId: Uuid({ description: 'Send it back with the assertion to passkeys/login/verify' }),
  options: Type.Ref(AuthenticationOptionsSchema)
})
export const LoginOptionsResponseSchema = Success(LoginOptionsSchema)

export const LoginOptionsBodySchema = Type.Object({
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'Limit the login to this account\'s passkeys; omit it for a discoverable credential' })),
  mfaToken: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Instead of email: the mfaToken of a login awaiting its second factor; the options are bound to that user\'s passkeys' }))
}, { additionalProperties: false })
export type LoginOptionsBody = Static<typeof LoginOptionsBodySchema>

/** RegistrationResponseJSON (what @simplewebauthn/browser startRegistration, or PublicKeyCredential.toJSON, gives). */
export const RegistrationResponseSchema = Type.Object({
  id: CredentialId(),
  rawId: CredentialId(),
  type: PublicKeyType,
  response: Type.Object({
    clientDataJSON: Base64Url(8192),
    attestationObject: Base64Url(65536),
    authenticatorData: Type.Optional(Base64Url(16384)),
    transports: Type.Optional(Transports),
    publicKeyAlgorithm: Type.Optional(Type.Integer({ format: 'int32', minimum: -65536, maximum: 65535 })),
    publicKey: Type.Optional(Base64Url(8192))
  }),
  authenticatorAttachment: Type.Optional(AuthenticatorAttachment),
  clientExtensionResults: Type.Optional(ClientExtensionResults)
}, { $id: 'PasskeyRegistrationResponse' })
export type RegistrationResponse = Static<typeof RegistrationResponseSchema>

/** AuthenticationResponseJSON (what @simplewebauthn/browser startAuthentication, or PublicKeyCredential.toJSON, gives). */
export const AuthenticationResponseSchema = Type.Object({
  id: CredentialId(),
  rawId: CredentialId(),
  type: PublicKeyType,
  response: Type.Object({
    clientDataJSON: Base64Url(8192),
    authenticatorData: Base64Url(16384),
    signature: Base64Url(2048),
    userHandle: Type.Optional(Base64Url(128))
  }),
  authenticatorAttachment: Type.Optional(AuthenticatorAttachment),
  clientExtensionResults: Type.Optional(ClientExtensionResults)
}, { $id: 'PasskeyAuthenticationResponse' })
export type AuthenticationResponse = Static<typeof AuthenticationResponseSchema>

export const RegisterVerifyBodySchema = Type.Object({
  response: Type.Ref(RegistrationResponseSchema),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S', description: 'A label for the passkey (default "Passkey")' }))
}, { additionalProperties: false })
export type RegisterVerifyBody = Static<typeof RegisterVerifyBodySchema>

export const LoginVerifyBodySchema = Type.Object({
  challengeId: Uuid({ description: 'From passkeys/login/options' }),
  response: Type.Ref(AuthenticationResponseSchema)
}, { additionalProperties: false })
export type LoginVerifyBody = Static<typeof LoginVerifyBodySchema>

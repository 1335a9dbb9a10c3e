import { Type, type Static } from '@sinclair/typebox'
import { Nullable, Success, Timestamp, Uuid, WithHeaders } from './common.js'

const ProviderName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,49}$', maxLength: 50, description: 'A provider name from OIDC_PROVIDERS' })

export const OidcProviderSchema = Type.Object({ name: ProviderName }, { $id: 'OidcProvider' })
export const OidcProviderListResponseSchema = Success(Type.Array(Type.Ref(OidcProviderSchema), { maxItems: 100 }))

export const OidcProviderParamsSchema = Type.Object({ provider: ProviderName })

export const OidcAuthorizeQuerySchema = Type.Object({
  redirectUri: Type.String({ minLength: 1, maxLength: 2048, description: 'Where the browser is sent back with code or error: one of OIDC_REDIRECT_URIS, exactly' })
}, { additionalProperties: false })

/** The provider's authorization response; whatever else it adds (iss, session_state, scope) is passed on to validation as sent. */
export const OidcCallbackQuerySchema = Type.Object({
  code: Type.Optional(Type.String({ maxLength: 2048, description: "The provider's authorization code" })),
  state: Type.Optional(Type.String({ maxLength: 512, description: 'The state of the flow the authorize route started' })),
  error: Type.Optional(Type.String({ maxLength: 256, description: "The provider's error, when it refused" })),
  error_description: Type.Optional(Type.String({ maxLength: 2048, description: "The provider's error description" })),
  iss: Type.Optional(Type.String({ maxLength: 2048, description: "The provider's issuer (RFC 9207)" }))
}, { additionalProperties: true })

export const OidcExchangeSchema = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 512, description: 'The one-time code the callback put in the redirect (60 s, single use)' })
}, { additionalProperties: false })

export const IdentitySchema = Type.Object({
  id: Uuid(),
  provider: ProviderName,
  subject: Type.String({ maxLength: 255, description: "The provider's sub for this user" }),
  email: Nullable(Type.String({ maxLength: 254, description: 'The email the provider gave when the identity was linked' })),
  createdAt: Timestamp()
}, { $id: 'Identity' })
export type Identity = Static<typeof IdentitySchema>
export const IdentityListResponseSchema = Success(Type.Array(Type.Ref(IdentitySchema), { maxItems: 100 }))

export const RedirectResponse = (description: string) => WithHeaders(Type.Null({ description }), 'Location')

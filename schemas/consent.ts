import { Type, type Static } from '@sinclair/typebox'
import { Success, Timestamp, Uuid } from './common.js'

/** A consent purpose: one of CONSENT_PURPOSES (default terms, privacy, marketing). */
export const PurposeSchema = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,49}$', maxLength: 50, description: 'A purpose from CONSENT_PURPOSES (default terms, privacy, marketing)' })
/** The version of the text consented to (a document version, a date): the client's own label. */
export const ConsentVersionSchema = Type.String({ minLength: 1, maxLength: 50, pattern: '^[A-Za-z0-9._:+-]+$', description: 'The version of the text the user saw, e.g. 2026-01 or v3' })

export const ConsentSchema = Type.Object({
  purpose: PurposeSchema,
  granted: Type.Boolean(),
  version: ConsentVersionSchema,
  updatedAt: Timestamp({ description: 'When this state was recorded' })
}, { $id: 'Consent', description: "A user's current consent to a purpose: the latest change recorded" })
export type Consent = Static<typeof ConsentSchema>

/** One change as recorded; the history is every change, oldest first. */
export const ConsentChangeSchema = Type.Object({
  purpose: PurposeSchema,
  granted: Type.Boolean(),
  version: ConsentVersionSchema,
  createdAt: Timestamp()
}, { $id: 'ConsentChange', description: 'A change of a consent, as recorded (the history is append-only)' })
export type ConsentChange = Static<typeof ConsentChangeSchema>

export const ConsentParamsSchema = Type.Object({ id: Uuid({ description: 'A UUID' }), purpose: PurposeSchema })

export const ConsentInputSchema = Type.Object({
  granted: Type.Boolean(),
  version: ConsentVersionSchema
}, { additionalProperties: false })
export type ConsentInput = Static<typeof ConsentInputSchema>

/** What a registration may consent to: purpose → version, each granted. */
export const RegistrationConsentsSchema = Type.Record(PurposeSchema, ConsentVersionSchema, {
  maxProperties: 50,
  additionalProperties: false,
  description: 'Purposes granted at registration, each with the version of its text (e.g. { "terms": "2026-01" }); an unknown purpose is 400'
})

export const ConsentListResponseSchema = Success(Type.Array(Type.Ref(ConsentSchema), { maxItems: 50 }))
export const ConsentResponseSchema = Success(Type.Ref(ConsentSchema))

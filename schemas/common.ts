import { Type, type Static, type TSchema } from '@sinclair/typebox'

export const ErrorDetailSchema = Type.Object({
  field: Type.Optional(Type.String()),
  message: Type.String()
}, { $id: 'ErrorDetail' })

export const ErrorSchema = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', examples: ['VALIDATION_ERROR'] }),
    message: Type.String(),
    details: Type.Optional(Type.Array(Type.Ref(ErrorDetailSchema))),
    requestId: Type.String()
  })
}, { $id: 'Error', description: 'The error envelope' })
export type ErrorBody = Static<typeof ErrorSchema>

export const IdParamsSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'A UUID' })
})

export const Timestamp = (options: { description?: string } = {}) => Type.String({ format: 'date-time', ...options })
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const EmptyResponse = Type.Null({ description: 'No content' })
export const NotModifiedResponse = Type.Null({ description: 'Not modified: the ETag sent in If-None-Match is current' })

/** The success envelope around a data schema. */
export const Success = <T extends TSchema>(data: T, extra: Record<string, TSchema> = {}) => Type.Object({
  success: Type.Literal(true),
  data,
  message: Type.Optional(Type.String()),
  ...extra
})

const ErrorRef = Type.Ref(ErrorSchema)
const errorDescriptions: Record<number, string> = {
  400: 'Invalid input (VALIDATION_ERROR, INVALID_TOKEN)',
  401: 'Not authenticated (UNAUTHORIZED, INVALID_CREDENTIALS, TOKEN_EXPIRED, TOKEN_REUSED)',
  403: 'Not allowed (FORBIDDEN)',
  404: 'Not found (NOT_FOUND)',
  409: 'Conflict (CONFLICT, EMAIL_TAKEN)',
  412: 'If-Match does not match the current ETag (PRECONDITION_FAILED)',
  413: 'Body too large (PAYLOAD_TOO_LARGE)',
  415: 'Unsupported content type (UNSUPPORTED_MEDIA_TYPE)',
  429: 'Rate limited (RATE_LIMITED); Retry-After says when to retry',
  500: 'Unexpected failure (INTERNAL_ERROR)',
  503: 'A dependency is unavailable (SERVICE_UNAVAILABLE)'
}

/** Error responses for a route: every status it can return, each in the error envelope. */
export function errors (...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {}
  for (const status of [...statuses, 500]) out[status] = { ...ErrorRef, description: errorDescriptions[status] ?? 'Error' }
  return out
}

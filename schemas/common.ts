import { Type, type Static, type TSchema } from '@sinclair/typebox'

export const ErrorDetailSchema = Type.Object({
  field: Type.Optional(Type.String({ description: 'The input the message is about (a body property path, a parameter, a check)' })),
  message: Type.String({ maxLength: 500 })
}, { $id: 'ErrorDetail' })

/** The contract's request id: the client's own X-Request-Id when well-formed, otherwise a new one. */
export const RequestIdSchema = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$', maxLength: 128 })

export const ErrorSchema = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', maxLength: 64, examples: ['VALIDATION_ERROR'] }),
    message: Type.String(),
    details: Type.Optional(Type.Array(Type.Ref(ErrorDetailSchema))),
    requestId: RequestIdSchema
  })
}, { $id: 'Error', description: 'The error envelope' })
export type ErrorBody = Static<typeof ErrorSchema>

/** A UUID in its canonical 36-character form. */
export const Uuid = (options: { description?: string } = {}) => Type.String({ format: 'uuid', maxLength: 36, ...options })

export const IdParamsSchema = Type.Object({
  id: Uuid({ description: 'A UUID' })
})

/** An ISO-8601 date-time; answers carry UTC with milliseconds (24 characters), filters accept any RFC 3339 form up to 64. */
export const Timestamp = (options: { description?: string } = {}) => Type.String({ format: 'date-time', maxLength: 64, ...options })
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** A client's User-Agent as kept with a login or an audit row: cut at 512 characters. */
export const UserAgentSchema = Type.String({ maxLength: 512 })

/** What a list answers as nextCursor (base64url), short enough for its cursor parameter to take back. */
export const NextCursorSchema = Nullable(Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: 1024, description: 'Pass as cursor for the next page; null on the last page' }))

export const EmptyResponse = Type.Null({ description: 'No content' })
export const NotModifiedResponse = Type.Null({ description: 'Not modified: the ETag sent in If-None-Match is current' })

/** The success envelope around a data schema. */
export const Success = <T extends TSchema>(data: T, extra: Record<string, TSchema> = {}) => Type.Object({
  success: Type.Literal(true),
  data,
  message: Type.Optional(Type.String({ maxLength: 500 })),
  ...extra
})

/**
 * A response that also sends these headers. Only their names are given here: the OpenAPI
 * document describes each once (components.headers, src/plugins/external/swagger.ts).
 */
export const WithHeaders = <T extends TSchema>(schema: T, ...headers: Array<'ETag' | 'Location'>): T =>
  ({ ...schema, headers: Object.fromEntries(headers.map(name => [name, {}])) })

const ErrorRef = Type.Ref(ErrorSchema)
const errorDescriptions: Record<number, string> = {
  400: 'Invalid input (VALIDATION_ERROR, INVALID_TOKEN)',
  401: 'Not authenticated (UNAUTHORIZED, INVALID_CREDENTIALS, INVALID_MFA_CODE, TOKEN_EXPIRED, TOKEN_REUSED)',
  403: 'Not allowed (FORBIDDEN)',
  404: 'Not found (NOT_FOUND)',
  406: 'The Accept header refuses the only media type the operation answers (NOT_ACCEPTABLE)',
  409: 'Conflict (CONFLICT, EMAIL_TAKEN)',
  412: 'If-Match does not match the current ETag (PRECONDITION_FAILED)',
  422: 'The Idempotency-Key was already used with a different request: method, path or body (IDEMPOTENCY_KEY_REUSED)',
  413: 'Body too large (PAYLOAD_TOO_LARGE)',
  415: 'Unsupported content type (UNSUPPORTED_MEDIA_TYPE)',
  426: 'A WebSocket endpoint reached without an Upgrade: websocket request (UPGRADE_REQUIRED)',
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

/** The contract's Idempotency-Key: 1 to 255 characters of [A-Za-z0-9._:-]. */
export const IdempotencyKeySchema = Type.String({
  pattern: '^[A-Za-z0-9._:-]{1,255}$',
  maxLength: 255,
  description: 'Makes a retry safe: the same key with the same request (method, path, body) within 24 h answers the stored response ' +
    '(status, body, Location) with Idempotent-Replayed: true and does nothing else; with a different request it is 422 ' +
    'IDEMPOTENCY_KEY_REUSED; while the first request still runs, 409 IDEMPOTENCY_IN_PROGRESS. Scoped to the caller (the user, or for ' +
    'an anonymous operation the operation itself). A 5xx is not stored: a retry with the key runs again.'
})

/** The error responses Idempotency-Key adds to an operation that honours it (a malformed key is 400). */
export const idempotencyErrors = (): Record<number, TSchema> => ({
  ...errors(400, 422),
  409: { ...ErrorRef, description: `${errorDescriptions[409]}; a request with the same Idempotency-Key is still running (IDEMPOTENCY_IN_PROGRESS)` }
})

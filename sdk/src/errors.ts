import type { Middleware } from 'openapi-fetch'
import type { components } from './schema.js'

/** The error codes of the contract (CONTRACT.md). The service may add codes, so `ApiError.code` stays open to any string. */
export type ErrorCode =
  | 'VALIDATION_ERROR' | 'INVALID_TOKEN' | 'BATCH_FAILED'
  | 'UNAUTHORIZED' | 'INVALID_CREDENTIALS' | 'TOKEN_EXPIRED' | 'TOKEN_REUSED' | 'INVALID_MFA_CODE'
  | 'FORBIDDEN' | 'NOT_FOUND' | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT' | 'EMAIL_TAKEN' | 'IDEMPOTENCY_IN_PROGRESS'
  | 'PRECONDITION_FAILED' | 'PAYLOAD_TOO_LARGE' | 'URI_TOO_LONG' | 'UNSUPPORTED_MEDIA_TYPE' | 'IDEMPOTENCY_KEY_REUSED'
  | 'RATE_LIMITED' | 'INTERNAL_ERROR' | 'SERVICE_UNAVAILABLE'
  /** Not the service's: the answer was not the contract's error envelope (a proxy's page, say). */
  | 'UNEXPECTED_RESPONSE'

export type ErrorDetail = components['schemas']['ErrorDetail']
type ErrorEnvelope = components['schemas']['Error']

/** A non-2xx answer of the service, with the contract's error code. */
export class ApiError extends Error {
  override name = 'ApiError'

  constructor (
    readonly status: number,
    // `string & {}` keeps editors suggesting the known codes while accepting new ones.
    readonly code: ErrorCode | (string & {}),
    message: string,
    readonly details: ErrorDetail[] = [],
    readonly requestId?: string
  ) {
    super(message)
  }

  static async from (response: Response): Promise<ApiError> {
    const requestId = response.headers.get('x-request-id') ?? undefined
    let body: Partial<ErrorEnvelope> | undefined
    try {
      body = await response.clone().json() as Partial<ErrorEnvelope>
    } catch {}
    const error = body?.error
    if (typeof error?.code !== 'string') {
      return new ApiError(response.status, 'UNEXPECTED_RESPONSE', `HTTP ${response.status} without the error envelope`, [], requestId)
    }
    return new ApiError(response.status, error.code, error.message, error.details, error.requestId ?? requestId)
  }
}

/** Turns every non-2xx answer into a thrown ApiError, so a call resolves only with data (304 is not an error). */
export const throwOnError: Middleware = {
  async onResponse ({ response }) {
    if (!response.ok && response.status !== 304) throw await ApiError.from(response)
  }
}

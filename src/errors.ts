export interface ErrorDetail { field?: string, message: string }

/** A failure the client caused or may see; rendered once, by the error handler, in the contract's envelope. */
export class AppError extends Error {
  constructor (
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers?: Record<string, string>
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export const validationError = (message: string, details?: ErrorDetail[]) => new AppError(400, 'VALIDATION_ERROR', message, details)
export const unauthorized = (message = 'Authentication required') => new AppError(401, 'UNAUTHORIZED', message)
export const invalidCredentials = (message = 'Invalid email or password') => new AppError(401, 'INVALID_CREDENTIALS', message)
export const invalidMfaCode = () => new AppError(401, 'INVALID_MFA_CODE', 'The code is wrong, expired or already used')
export const forbidden = (message = 'You do not have permission to do this') => new AppError(403, 'FORBIDDEN', message)
export const notFound = (what = 'Resource') => new AppError(404, 'NOT_FOUND', `${what} not found`)
export const conflict = (message: string) => new AppError(409, 'CONFLICT', message)
export const emailTaken = () => new AppError(409, 'EMAIL_TAKEN', 'A user with this email already exists', [{ field: 'email', message: 'is already taken' }])
export const notAcceptable = (message: string) => new AppError(406, 'NOT_ACCEPTABLE', message)
export const upgradeRequired = () => new AppError(426, 'UPGRADE_REQUIRED', 'This endpoint is a WebSocket: connect with an Upgrade: websocket request', undefined, { upgrade: 'websocket', connection: 'Upgrade' })
export const preconditionFailed = () => new AppError(412, 'PRECONDITION_FAILED', 'The resource has changed since it was read (If-Match does not match)')
export const invalidToken = (message = 'The token is invalid or expired') => new AppError(400, 'INVALID_TOKEN', message)
export const tokenReused = () => new AppError(401, 'TOKEN_REUSED', 'The refresh token was already used; every token of this login has been revoked')
export const rateLimited = (retryAfterSec: number, message = 'Too many requests, try again later') =>
  new AppError(429, 'RATE_LIMITED', message, undefined, { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSec))) })
export const serviceUnavailable = (message: string, details?: ErrorDetail[], retryAfterSec?: number) =>
  new AppError(503, 'SERVICE_UNAVAILABLE', message, details, retryAfterSec ? { 'retry-after': String(retryAfterSec) } : undefined)

/** A lost or refused database connection (a restart, a failover): the client may retry; it is not a bug. */
function isConnectionFailure (e: { code?: string, message?: string }) {
  if (typeof e?.code === 'string' && (/^08/.test(e.code) || ['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e.code))) return true
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(e?.message ?? '')
}

/** Maps a PostgreSQL error to a client error, or undefined when it is a server fault. */
export function fromDatabaseError (err: unknown): AppError | undefined {
  const e = err as { code?: string, constraint?: string, message?: string }
  if (isConnectionFailure(e)) return serviceUnavailable('The database is unavailable, try again shortly', undefined, 2)
  // A statement ended by DB_STATEMENT_TIMEOUT or a lock wait: transient, like a busy database.
  if (e?.code === '57014' || e?.code === '55P03') return serviceUnavailable('The database is busy, try again shortly', undefined, 2)
  if (typeof e?.code !== 'string' || !/^[0-9A-Z]{5}$/.test(e.code)) return undefined
  switch (e.code) {
    case '23505':
      if (e.constraint === 'users_email_live_key' || /users_email_live_key/.test(e.message ?? '')) return emailTaken()
      return conflict('The resource already exists')
    case '23503': return conflict('The resource is referenced by or refers to another that does not exist')
    case '23514': case '22001': case '22P02': case '22007': case '22008': case '22003':
      return validationError('A value is out of range or malformed')
    case '40001': case '40P01': return new AppError(409, 'CONFLICT', 'The request conflicted with another one; retry it')
    default: return undefined
  }
}
export const uriTooLong = () => new AppError(414, 'URI_TOO_LONG', 'A path segment is longer than the server accepts')
export const unsupportedMediaType = () => new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported content type; send application/json')
export const idempotencyKeyReused = () =>
  new AppError(422, 'IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was already used with a different request (method, path or body)')
export const idempotencyInProgress = () =>
  new AppError(409, 'IDEMPOTENCY_IN_PROGRESS', 'A request with this Idempotency-Key is still running; retry it shortly')

/** A failure as the client would see it (the error handler's mapping), or undefined for a server fault. */
export const toAppError = (err: unknown): AppError | undefined => err instanceof AppError ? err : fromDatabaseError(err)

/** An atomic batch that was not applied: one detail per failing operation, `operations[<index>]`. */
export const batchFailed = (failures: Array<{ index: number, error: AppError }>) => new AppError(400, 'BATCH_FAILED',
  `The batch was not applied: ${failures.length} operation(s) failed`,
  failures.map(({ index, error }) => ({
    field: `operations[${index}]`,
    message: [`${error.statusCode} ${error.code}: ${error.message}`, ...(error.details ?? []).map(d => d.field ? `${d.field} ${d.message}` : d.message)].join('; ').slice(0, 500)
  })))

/** A failure the client caused, as the error handler renders it; anything else (a server fault) is rethrown. */
export function clientFailure (err: unknown): AppError {
  const error = toAppError(err)
  if (!error) throw err
  return error
}

/** One failed item of a bulk request: the envelope's `error` without the request id (the whole answer's). */
export const itemError = (error: AppError) => ({ code: error.code, message: error.message, ...(error.details?.length ? { details: error.details } : {}) })

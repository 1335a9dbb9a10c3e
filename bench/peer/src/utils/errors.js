'use strict'

class AppError extends Error {
  constructor (status, code, message, details) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

module.exports = {
  AppError,
  ValidationError: (message, details) => new AppError(400, 'VALIDATION_ERROR', message, details),
  UnauthorizedError: (message = 'Authentication required') => new AppError(401, 'UNAUTHORIZED', message),
  InvalidCredentialsError: () => new AppError(401, 'INVALID_CREDENTIALS', 'Invalid email or password'),
  TokenExpiredError: () => new AppError(401, 'TOKEN_EXPIRED', 'The access token has expired'),
  TokenReusedError: () => new AppError(401, 'TOKEN_REUSED', 'The refresh token was already used; every token of this login is revoked'),
  ForbiddenError: (message = 'You do not have permission to do this') => new AppError(403, 'FORBIDDEN', message),
  NotFoundError: (what = 'Resource') => new AppError(404, 'NOT_FOUND', `${what} not found`),
  PreconditionFailedError: () => new AppError(412, 'PRECONDITION_FAILED', 'The resource has changed since that ETag')
}

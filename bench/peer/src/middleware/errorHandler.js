'use strict'
const { UniqueConstraintError, DatabaseError } = require('sequelize')
const { AppError } = require('../utils/errors')

module.exports = function errorHandler (err, req, res, next) {
  let error = err
  if (err instanceof UniqueConstraintError) {
    error = new AppError(409, 'EMAIL_TAKEN', 'A user with this email already exists', [{ field: 'email', message: 'is already taken' }])
  } else if (err.type === 'entity.parse.failed') {
    error = new AppError(400, 'VALIDATION_ERROR', 'Body is not valid JSON')
  } else if (err.type === 'entity.too.large') {
    error = new AppError(413, 'PAYLOAD_TOO_LARGE', 'Request body is too large')
  } else if (err instanceof DatabaseError && err.parent?.code === '22P02') {
    error = new AppError(400, 'VALIDATION_ERROR', 'A value is malformed')
  } else if (!(err instanceof AppError)) {
    console.error(err)
    error = new AppError(500, 'INTERNAL_ERROR', 'An unexpected error occurred')
  }
  const body = { code: error.code, message: error.message }
  if (error.details?.length) body.details = error.details
  body.requestId = req.id
  res.status(error.status).json({ success: false, error: body })
}

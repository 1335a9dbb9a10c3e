'use strict'
const { ValidationError } = require('../utils/errors')

/** Validates req[part] against a Joi schema and replaces it with the validated value. */
module.exports = (schema, part = 'body') => (req, res, next) => {
  const { error, value } = schema.validate(req[part], { abortEarly: false })
  if (error) {
    return next(ValidationError('The request is invalid', error.details.map(d => ({ field: d.path.join('.') || undefined, message: d.message }))))
  }
  if (part === 'query') req.validatedQuery = value
  else req[part] = value
  next()
}

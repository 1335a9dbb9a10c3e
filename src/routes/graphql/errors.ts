import { GraphQLError } from 'graphql'
import type { FastifyBaseLogger } from 'fastify'
import { AppError, fromDatabaseError, validationError, type ErrorDetail } from '../../errors.js'
import type { Static } from '@sinclair/typebox'
import type { GraphqlErrorSchema } from '../../../schemas/graphql.js'

type GraphqlError = Static<typeof GraphqlErrorSchema>

const INTERNAL = { message: 'An unexpected error occurred', code: 'INTERNAL_ERROR' }
// What ErrorDetailSchema and GraphqlErrorSchema allow.
const cut = (text: string, max: number) => text.length > max ? `${text.slice(0, max - 1)}…` : text

/**
 * The one mapping from what a resolver throws to what a GraphQL answer carries: the typed errors
 * of src/errors.ts (and the database errors the REST error handler maps the same way) keep their
 * REST code, message and details in extensions; anything else is INTERNAL_ERROR, logged, its
 * detail never sent.
 */
export function toGraphqlError (error: GraphQLError, log: FastifyBaseLogger): GraphqlError {
  const where = {
    ...(error.locations?.length ? { locations: error.locations.slice(0, 100) } : {}),
    ...(error.path?.length ? { path: error.path.slice(0, 100) } : {})
  }
  const original = error.originalError
  const known = original instanceof AppError ? original : original ? fromDatabaseError(original) : undefined
  if (known) {
    const details = known.details?.slice(0, 100).map(d => ({ ...d, message: cut(d.message, 500) }))
    return { message: cut(known.message, 1000), ...where, extensions: { code: known.code, ...(details?.length ? { details } : {}) } }
  }
  // Without a path it is about the request (an operation that is not in the document); on a
  // field without a thrown cause it is ours (a null for a non-null field).
  if (original || error.path) {
    log.error({ err: original ?? error }, 'graphql field failed')
    return { message: INTERNAL.message, ...where, extensions: { code: INTERNAL.code } }
  }
  return { message: cut(error.message, 1000), ...where, extensions: { code: 'VALIDATION_ERROR' } }
}

/** A GraphQL error's message with where in the document it is, as one detail of the error envelope. */
function detailOf (error: { message?: string, locations?: readonly { line: number, column: number }[] }): ErrorDetail {
  const message = error.message ?? 'is invalid'
  const at = error.locations?.[0] ? ` (line ${error.locations[0].line}, column ${error.locations[0].column})` : ''
  return { field: /^Variable "\$/.test(message) ? 'variables' : 'query', message: cut(`${message}${at}`, 500) }
}

/** A refused request (the document does not parse or validate, the variables do not fit): 400 in the error envelope. */
export function invalidRequest (message: string, errors: ReadonlyArray<{ message?: string, locations?: readonly { line: number, column: number }[] }>) {
  return validationError(message, errors.slice(0, 20).map(detailOf))
}

/**
 * What the error handler of the GraphQL routes passes on to the application's one: mercurius's
 * own request errors become the contract's (400 VALIDATION_ERROR with a detail per GraphQL
 * error); everything else (401 from the token, 429, 503, a body that fails its schema) is
 * already one.
 */
export function requestErrorOf (err: Error & { code?: string, errors?: unknown }): Error {
  if (err instanceof AppError || !err.code?.startsWith('MER_ERR_')) return err
  if (err.code === 'MER_ERR_METHOD_NOT_ALLOWED') return methodNotAllowed()
  // GET's variables (or extensions) that are not JSON.
  if (err instanceof SyntaxError) return validationError('The GraphQL request is invalid', [{ field: 'variables', message: cut(`must be a JSON object: ${err.message}`, 500) }])
  const errors = Array.isArray(err.errors) && err.errors.length > 0 ? err.errors as GraphQLError[] : [err]
  return invalidRequest('The GraphQL request is invalid', errors)
}

export const methodNotAllowed = () =>
  new AppError(405, 'METHOD_NOT_ALLOWED', 'Only queries may be sent with GET; send mutations with POST', undefined, { allow: 'POST' })

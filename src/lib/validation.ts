import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { validationError, type ErrorDetail } from '../errors.js'

// PostgreSQL cannot store NUL in text, and an unpaired surrogate would reach it as U+FFFD: both
// are refused as input rather than failing (or silently changing) at the database.
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const STORABLE = 'storableText'

function storableText (_enabled: boolean, data: string) {
  if (!UNSTORABLE.test(data)) return true
  storableText.errors = [{ keyword: STORABLE, message: 'must not contain NUL characters or unpaired surrogates', params: {} }]
  return false
}
storableText.errors = [] as object[]

/** A copy of a schema in which every string also has to be storable (the routes' own schemas stay as documented). */
function withStorableStrings (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withStorableStrings)
  if (schema === null || typeof schema !== 'object') return schema
  const copy: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(schema)) copy[key] = withStorableStrings(value)
  const type = (schema as { type?: unknown }).type
  if (type === 'string' || (Array.isArray(type) && type.includes('string'))) copy[STORABLE] = true
  return copy
}

/**
 * Every string a client sends must be one PostgreSQL can store (see UNSTORABLE).
 * Bodies are validated without type coercion ("42" is not a number) and never have unknown
 * properties stripped (they are rejected); querystrings, params and headers arrive as text,
 * so they are coerced.
 */
export function createValidatorCompiler (sharedSchemas: TSchema[]): FastifySchemaCompiler<TSchema> {
  const known = compilers.get(sharedSchemas)
  if (known) return known
  const make = (coerceTypes: Options['coerceTypes']) => {
    const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: true, strict: false })
    addFormats.default(ajv)
    ajv.addKeyword({ keyword: STORABLE, type: 'string', schemaType: 'boolean', validate: storableText, errors: true })
    for (const schema of sharedSchemas) ajv.addSchema(withStorableStrings(schema) as TSchema)
    return ajv
  }
  const strict = make(false)
  const coercing = make('array')
  const compiled = new Map<string, ValidateFunction>()
  const compiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? strict : coercing
    const key = `${httpPart === 'body' ? 'body' : 'text'} ${JSON.stringify(schema)}`
    let validate = compiled.get(key)
    if (!validate) compiled.set(key, validate = ajv.compile(withStorableStrings(schema) as TSchema))
    return validate
  }
  compilers.set(sharedSchemas, compiler)
  return compiler
}

// Each distinct schema is compiled once per process: the same params, query and body schemas recur
// on many routes, and every app built in the process (the tests build hundreds) shares them.
const compilers = new WeakMap<TSchema[], FastifySchemaCompiler<TSchema>>()

export const INVALID_REQUEST = 'The request is invalid'

/** A validator's errors as the envelope's details: `field` is the property path (`profile.phone`). */
export function validationDetails (errors: Array<Partial<ErrorObject>>, context = 'request'): ErrorDetail[] {
  return errors.map(v => {
    const params = (v.params ?? {}) as Record<string, unknown>
    const path = (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.')
    const field = params.missingProperty ?? params.additionalProperty
    const name = [path, field].filter(Boolean).join('.')
    const message = params.additionalProperty ? 'is not allowed' : (v.message ?? 'is invalid')
    return name ? { field: name, message } : { message: `${context} ${message}` }
  })
}

/** Throws the 400 that a route with this body schema gives before its handler runs. */
export type BodyCheck = (value: unknown) => void

/**
 * A route's body validation, for a value that arrives inside another body (an operation of a
 * batch): the same compiler, so the same rules, defaults and details as the route itself.
 */
export function bodyCheck (compile: FastifySchemaCompiler<TSchema>, schema: TSchema): BodyCheck {
  const validate = compile({ schema, httpPart: 'body', method: 'POST', url: '' }) as ((value: unknown) => boolean) & { errors?: ErrorObject[] | null }
  return value => {
    if (!validate(value)) throw validationError(INVALID_REQUEST, validationDetails(validate.errors ?? [], 'body'))
  }
}

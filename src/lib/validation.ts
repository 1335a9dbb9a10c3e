import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from '@sinclair/typebox'

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
  const make = (coerceTypes: Options['coerceTypes']) => {
    const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: true, strict: false })
    addFormats.default(ajv)
    ajv.addKeyword({ keyword: STORABLE, type: 'string', schemaType: 'boolean', validate: storableText, errors: true })
    for (const schema of sharedSchemas) ajv.addSchema(withStorableStrings(schema) as TSchema)
    return ajv
  }
  const strict = make(false)
  const coercing = make('array')
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(withStorableStrings(schema) as TSchema)
}

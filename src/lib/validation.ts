import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from '@sinclair/typebox'

/**
 * Bodies are validated without type coercion ("42" is not a number) and never have unknown
 * properties stripped (they are rejected); querystrings, params and headers arrive as text,
 * so they are coerced.
 */
export function createValidatorCompiler (sharedSchemas: TSchema[]): FastifySchemaCompiler<TSchema> {
  const make = (coerceTypes: Options['coerceTypes']) => {
    const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: true, strict: false })
    addFormats.default(ajv)
    for (const schema of sharedSchemas) ajv.addSchema(schema)
    return ajv
  }
  const strict = make(false)
  const coercing = make('array')
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema)
}

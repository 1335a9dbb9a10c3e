import { Type, type Static } from '@sinclair/typebox'
import { Nullable } from './common.js'

// A document this long is already far over any sensible query; the parser also stops at 5000 tokens (src/routes/graphql).
const Query = Type.String({ minLength: 1, maxLength: 20_000, description: 'The GraphQL document (one query or mutation; subscriptions are not served)' })
const OperationName = Nullable(Type.String({ maxLength: 200, description: 'Which operation of the document to run, when it has several' }))
/** A JSON object whose keys the client chooses (variables, extensions). */
const JsonObject = (description: string) => Type.Record(Type.String({ maxLength: 200 }), Type.Unknown(), { maxProperties: 100, description })

export const GraphqlBodySchema = Type.Object({
  query: Query,
  operationName: Type.Optional(OperationName),
  variables: Type.Optional(Nullable(JsonObject('Values of the operation\'s variables'))),
  extensions: Type.Optional(JsonObject('Protocol extensions (accepted, not used)'))
}, { additionalProperties: false })

export const GraphqlQuerystringSchema = Type.Object({
  query: Query,
  operationName: Type.Optional(Type.String({ maxLength: 200, description: 'Which operation of the document to run, when it has several' })),
  variables: Type.Optional(Type.String({ maxLength: 20_000, description: 'The variables as a JSON object' })),
  extensions: Type.Optional(Type.String({ maxLength: 2000, description: 'Protocol extensions as a JSON object (accepted, not used)' }))
}, { additionalProperties: false })

/** The most errors one answer reports: beyond it they are cut (a costly query is refused long before). */
export const GRAPHQL_MAX_ERRORS = 100

export const GraphqlErrorSchema = Type.Object({
  message: Type.String({ maxLength: 1000 }),
  locations: Type.Optional(Type.Array(Type.Object({
    line: Type.Integer({ format: 'int32', minimum: 1, maximum: 1_000_000 }),
    column: Type.Integer({ format: 'int32', minimum: 1, maximum: 1_000_000 })
  }), { maxItems: 100 })),
  path: Type.Optional(Type.Array(Type.Union([Type.String({ maxLength: 200 }), Type.Integer({ format: 'int32', minimum: 0, maximum: 1_000_000 })]), { maxItems: 100, description: 'Where in data the failing field is' })),
  extensions: Type.Object({
    code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', maxLength: 64, description: 'The REST API\'s error code for the same failure (FORBIDDEN, NOT_FOUND, VALIDATION_ERROR, ...)' }),
    details: Type.Optional(Type.Array(Type.Object({
      field: Type.Optional(Type.String({ maxLength: 200 })),
      message: Type.String({ maxLength: 500 })
    }), { maxItems: 100 }))
  })
}, { $id: 'GraphqlError', description: 'A field that failed; the rest of data is still answered' })

export const GraphqlResponseSchema = Type.Object({
  data: Type.Optional(Nullable(JsonObject('The result, shaped as the document asked'))),
  errors: Type.Optional(Type.Array(Type.Ref(GraphqlErrorSchema), { maxItems: GRAPHQL_MAX_ERRORS }))
}, { description: 'A GraphQL result: data, and errors for the fields that failed (each with extensions.code)' })
export type GraphqlResponse = Static<typeof GraphqlResponseSchema>

import { getOperationAST, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql'
import depthLimit from 'graphql-depth-limit'
import { getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity'
import mercurius from 'mercurius'
import type { FastifyPluginAsync, FastifySchemaCompiler } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { validationError } from '../../errors.js'
import { contextOf } from '../../services/context.js'
import { errors } from '../../../schemas/common.js'
import { GRAPHQL_MAX_ERRORS, GraphqlBodySchema, GraphqlQuerystringSchema, GraphqlResponseSchema } from '../../../schemas/graphql.js'
import { UserListQuerySchema } from '../../../schemas/user.js'
import { invalidRequest, methodNotAllowed, requestErrorOf, toGraphqlError } from './errors.js'
import { createLoaders, createResolvers, type GraphqlContext } from './resolvers.js'
import { typeDefs } from './schema.js'

/** The contract: a query deeper than this many levels of fields is refused. */
export const MAX_DEPTH = 8
// Bounds the parser's work on a hostile document before any check runs (a full introspection query has some 300).
const MAX_TOKENS = 5000
/** The longest page a connection serves (the REST list's limit). */
const MAX_PAGE = UserListQuerySchema.properties.limit.maximum as number
/** Lists without a page size, costed at their longest: a user holds at most 20 roles; every role is few. */
const LIST_SIZES: Record<string, number> = { 'Query.roles': 20, 'User.roleDetails': 20 }

/** A list field costs its page size (first, at most MAX_PAGE) times one item; any other field 1 plus its selection. */
const listEstimator: ComplexityEstimator = ({ type, field, args, childComplexity }) => {
  const size = typeof args.first === 'number' ? Math.min(Math.max(args.first, 0), MAX_PAGE) : LIST_SIZES[`${type.name}.${field.name}`]
  return size === undefined ? undefined : 1 + size * childComplexity
}
const estimators = [listEstimator, simpleEstimator({ defaultComplexity: 1 })]

const looksLikeJson = (source: string) => { try { JSON.parse(source); return true } catch { return false } }

// Optional: a Bearer token, or none (OpenAPI's empty requirement).
const security: Array<Record<string, string[]>> = [{ bearerAuth: [] }, {}]
const description = 'GraphQL over the same services and permission checks as the REST API (schema: openapi/schema.graphql). ' +
  'The Bearer token is optional: without one, fields that need a caller fail with UNAUTHORIZED. A field that fails is null with an ' +
  'error whose extensions.code is the REST error code; the answer is still 200. A document that does not parse or validate, is ' +
  `deeper than ${MAX_DEPTH} levels or costs more than GRAPHQL_MAX_COST is 400 VALIDATION_ERROR, with a detail per problem.`
const ROUTE_SCHEMAS = {
  GET: {
    operationId: 'graphqlQuery',
    tags: ['graphql'],
    summary: 'Run a GraphQL query (no mutations: 405)',
    description: `${description} A mutation sent with GET is 405 METHOD_NOT_ALLOWED (Allow: POST).`,
    security,
    querystring: GraphqlQuerystringSchema,
    response: { 200: GraphqlResponseSchema, ...errors(400, 401, 405, 429) }
  },
  POST: {
    operationId: 'graphql',
    tags: ['graphql'],
    summary: 'Run a GraphQL query or mutation',
    description,
    security,
    body: GraphqlBodySchema,
    response: { 200: GraphqlResponseSchema, ...errors(400, 401, 429) }
  }
}

/** A request's operationName, from the body (POST) or the query string (GET). */
const operationNameOf = (ctx: GraphqlContext) => {
  const { body, query } = ctx.reply.request as { body?: { operationName?: string | null }, query?: { operationName?: string } }
  return (ctx.reply.request.method === 'GET' ? query?.operationName : body?.operationName) ?? undefined
}

/** The one operation of the document the request runs; a document where none is named as asked is refused. */
function operationOf (document: DocumentNode, operationName: string | undefined) {
  const operation = getOperationAST(document, operationName)
  if (!operation) {
    throw validationError('No operation to run', [{
      field: 'operationName',
      message: operationName === undefined ? 'is required when the document has several operations' : `names no operation of the document: ${operationName.slice(0, 200)}`
    }])
  }
  return operation
}

export interface GraphqlOptions { validatorCompiler: FastifySchemaCompiler<TSchema> }

/**
 * POST and GET /graphql (mercurius), over the REST API's services and permission checks. Its
 * routes are rate limited and authenticated as the REST routes are (the token is optional), and
 * documented in the OpenAPI document; GraphiQL is served at /graphiql outside production.
 */
const graphqlRoutes: FastifyPluginAsync<GraphqlOptions> = async function (fastify, { validatorCompiler }) {
  const { config } = fastify
  // The routes mercurius adds get the documented schemas; GraphiQL's own pages stay out of the document.
  fastify.addHook('onRoute', route => {
    const method = [route.method].flat()[0] as 'GET' | 'POST'
    if (route.url === '/graphql' && ROUTE_SCHEMAS[method]) {
      route.schema = ROUTE_SCHEMAS[method]
      route.attachValidation = false
    } else {
      route.schema = { ...route.schema, hide: true }
    }
  })
  // The same token check as the REST routes, only when a token is sent: without one, each field that needs a caller says so.
  fastify.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization !== undefined) await fastify.authenticate(request, reply)
  })
  // Mercurius's request errors are made the contract's, then the application's error handler answers them.
  fastify.setErrorHandler(async (err: Error) => { throw requestErrorOf(err) })

  await fastify.register(mercurius, {
    schema: typeDefs,
    resolvers: createResolvers(fastify, validatorCompiler) as never,
    loaders: createLoaders(fastify) as never,
    context: request => ({ caller: contextOf(request) }),
    graphiql: !config.production,
    errorHandler: false,
    // Executed: 200, with each failed field's error in the contract's terms (errors.ts).
    errorFormatter: (execution, context) => ({
      statusCode: 200,
      response: {
        data: execution.data ?? null,
        errors: execution.errors.slice(0, GRAPHQL_MAX_ERRORS).map(error => toGraphqlError(error, context.reply.log))
      } as never
    }),
    graphql: { parseOptions: { maxTokens: MAX_TOKENS } }
  })

  fastify.graphql.addHook<GraphqlContext>('preParsing', async (_schema, source, ctx) => {
    // Mercurius would read a source that is not GraphQL as a JSON syntax tree: only GraphQL is taken.
    if (looksLikeJson(source)) throw validationError('The query is not a GraphQL document', [{ field: 'query', message: 'must be a GraphQL document' }])
    if (ctx.reply.request.method !== 'GET') return
    // GET runs queries only (a mutation is 405); checked here, where an unknown operationName is still a clear 400.
    let document: DocumentNode
    try {
      document = parse(source, { maxTokens: MAX_TOKENS })
    } catch (err) {
      throw invalidRequest('The GraphQL request is invalid', [err as Error])
    }
    if (operationOf(document, operationNameOf(ctx)).operation !== 'query') throw methodNotAllowed()
  })

  // Before the document is validated, so a deep document is refused whatever else is wrong with it. Introspection
  // (__schema, __type) reads no data and is not counted: GraphiQL's own query is deeper than 8 (the cost still bounds it).
  fastify.graphql.addHook<GraphqlContext>('preValidation', async (schema, document) => {
    let tooDeep: boolean
    try {
      // The library counts the levels below the top one, hence MAX_DEPTH - 1.
      tooDeep = validate(schema, document, [depthLimit(MAX_DEPTH - 1)]).length > 0
    } catch {
      // A fragment that is unknown or spreads itself: the validation that comes next refuses the document.
      return
    }
    if (tooDeep) throw validationError(`The query is deeper than ${MAX_DEPTH} levels`, [{ field: 'query', message: `must not nest fields more than ${MAX_DEPTH} levels deep` }])
  })

  // After the document validated (its operations and variables are known good): its cost.
  fastify.graphql.addHook<GraphqlContext>('preExecution', async (schema: GraphQLSchema, document, ctx, variables) => {
    const operation = operationOf(document, operationNameOf(ctx))
    if (operation.operation === 'subscription') throw validationError('Subscriptions are not served', [{ field: 'query', message: 'must be a query or a mutation' }])
    let cost: number
    try {
      cost = getComplexity({ schema, query: document, variables: variables ?? {}, operationName: operation.name?.value, estimators })
    } catch (err) {
      throw invalidRequest('The GraphQL request is invalid', [err as Error])
    }
    if (cost > config.graphqlMaxCost) {
      throw validationError(`The query costs ${cost}, more than the limit of ${config.graphqlMaxCost}`, [{
        field: 'query', message: `costs ${cost}: each field 1, a list its page size (first) times one item; ask for fewer items or fields`
      }])
    }
  })
}

export default graphqlRoutes

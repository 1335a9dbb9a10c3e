import fp from 'fastify-plugin'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import { IdempotencyKeySchema } from '../../../schemas/common.js'
import { isRateLimitedPath } from '../../lib/route-config.js'

export const OPENAPI_INFO = {
  title: 'User Management API',
  description: 'Accounts, logins, roles, profiles and an audit trail. Every response uses the success or error envelope and ' +
    'carries X-Request-Id; every /api/v1 and /graphql response carries the x-ratelimit-* headers of the budget it spent.',
  version: '1.0.0'
}

const SHARED_RESPONSES = {
  PayloadTooLarge: '413: the body is larger than BODY_LIMIT (PAYLOAD_TOO_LARGE); any operation with a body',
  UriTooLong: '414: a path segment is longer than the router accepts (URI_TOO_LONG); any operation with a path parameter',
  UnsupportedMediaType: '415: the body is not JSON (UNSUPPORTED_MEDIA_TYPE); any operation with a body',
  RequestTimeout: '408: the request did not arrive within the server\'s request timeout (REQUEST_TIMEOUT); refused before routing',
  RequestHeaderFieldsTooLarge: '431: the request headers are over the server\'s limit (HEADERS_TOO_LARGE); refused before routing',
  InternalError: '500: an unexpected failure (INTERNAL_ERROR); never reveals internals',
  ServiceUnavailable: '503: a dependency is unavailable (SERVICE_UNAVAILABLE), with Retry-After; any operation'
}
// Answered by Node's HTTP parser before any hook runs: the request id is the only header they carry.
const BEFORE_ROUTING = ['RequestTimeout', 'RequestHeaderFieldsTooLarge']

/** Paths are relative to whoever serves the document; `x-internal: false`: a public API, for any client. */
const SERVER = {
  url: '/',
  description: 'The service that serves this document, wherever it runs (local, staging or production); in production behind a TLS-terminating proxy',
  'x-internal': false
}

/** Seconds or requests: integers up to what a JSON number carries exactly. */
const count = (minimum: number) => ({ type: 'integer', format: 'int64', minimum, maximum: Number.MAX_SAFE_INTEGER } as const)

/** Response headers, each described once (components.headers) and referenced by every response that sends it. */
const SHARED_HEADERS = {
  'X-Request-Id': {
    description: 'The client\'s own X-Request-Id when it sent one of 1 to 128 characters of [A-Za-z0-9._:-], otherwise a new one',
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$', maxLength: 128 }
  },
  'X-RateLimit-Limit': { description: 'Requests per window of the budget this route spends (RATE_LIMIT_MAX, or AUTH_RATE_LIMIT_MAX on the auth routes)', required: true, schema: count(1) },
  'X-RateLimit-Remaining': { description: 'Requests left in the current window', required: true, schema: count(0) },
  'X-RateLimit-Reset': { description: 'Seconds until the current window ends', required: true, schema: count(0) },
  'Retry-After': { description: 'Seconds to wait before trying again', required: true, schema: count(0) },
  ETag: {
    description: 'The strong ETag of the user returned: send it as If-None-Match (304 when unchanged) or If-Match (412 when stale)',
    required: true,
    schema: { type: 'string', pattern: '^"[A-Za-z0-9_-]+"$', maxLength: 64 }
  },
  Location: {
    description: 'On a 201, the path of the resource just created; on a 302, where the browser is sent',
    required: true,
    schema: { type: 'string', format: 'uri-reference', maxLength: 8192 }
  },
  'Idempotent-Replayed': {
    description: 'true when the answer is the stored response of an earlier request with the same Idempotency-Key (nothing was done again)',
    required: false,
    schema: { type: 'string', const: 'true', maxLength: 4 }
  },
  'Access-Control-Allow-Origin': {
    description: 'The request\'s Origin, only when it is one of CORS_ORIGINS (with Access-Control-Allow-Credentials: true); none listed: never sent',
    required: false,
    schema: { type: 'string', maxLength: 2048 }
  }
} as const
type HeaderName = keyof typeof SHARED_HEADERS
const RATE_LIMIT_HEADERS: HeaderName[] = ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']
const headerRefs = (names: string[]) => Object.fromEntries(names.map(name => {
  if (!(name in SHARED_HEADERS)) throw new Error(`response header ${name} is not in SHARED_HEADERS`)
  return [name, { $ref: `#/components/headers/${name}` }]
}))

interface Response { headers?: Record<string, unknown> }

interface Parameter { in: string, name?: string, required?: boolean, schema?: { default?: unknown } }
interface Operation { parameters?: Parameter[], responses?: Record<string, Response> }
const operationsOf = (document: object) => Object.entries<Record<string, Operation>>((document as { paths?: any }).paths ?? {})
  .flatMap(([path, item]) => Object.values(item).map(operation => ({ path, operation })))

/** A parameter with a default need not be sent: TypeBox lists it as required because the handler always sees a value. */
function defaultsOptional<T extends object> (document: T): T {
  for (const { operation } of operationsOf(document)) {
    for (const parameter of operation.parameters ?? []) {
      if (parameter.in !== 'path' && parameter.schema?.default !== undefined) delete parameter.required
    }
  }
  return document
}

/** Request parameters described once (components.parameters); an operation's own parameter of that name becomes a reference. */
const { description: idempotencyKeyDescription, ...idempotencyKeySchema } = IdempotencyKeySchema
const SHARED_PARAMETERS = {
  IdempotencyKey: { name: 'Idempotency-Key', in: 'header', required: false, description: idempotencyKeyDescription, schema: idempotencyKeySchema }
}

function sharedParameters<T extends object> (document: T): T {
  for (const { operation } of operationsOf(document)) {
    operation.parameters = operation.parameters?.map(parameter => {
      const shared = Object.entries(SHARED_PARAMETERS)
        .find(([, p]) => p.in === parameter.in && p.name.toLowerCase() === parameter.name?.toLowerCase())
      return shared ? { $ref: `#/components/parameters/${shared[0]}` } as unknown as Parameter : parameter
    })
  }
  return document
}

/**
 * The headers each response carries: X-Request-Id and (for allowed origins) CORS on every one,
 * the rate-limit headers on every /api/v1 and /graphql one (counted before anything else runs), Retry-After
 * on 429 and 503, and those a route names in its response schema (WithHeaders in
 * schemas/common.ts: ETag, Location).
 */
function sharedHeaders<T extends object> (document: T): T {
  for (const { path, operation } of operationsOf(document)) {
    for (const [status, response] of Object.entries(operation.responses ?? {})) {
      response.headers = headerRefs([
        'X-Request-Id',
        'Access-Control-Allow-Origin',
        ...(isRateLimitedPath(path) ? RATE_LIMIT_HEADERS : []),
        ...(status === '429' || status === '503' ? ['Retry-After'] : []),
        ...Object.keys(response.headers ?? {})
      ])
    }
  }
  return document
}

/** The OpenAPI document is generated from the routes' TypeBox schemas; components keep their $id names. */
export default fp(async function swagger (fastify) {
  await fastify.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      servers: [SERVER],
      // Every operation needs a Bearer token unless it says otherwise (security: [] on the anonymous ones).
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'auth', description: 'Logins, tokens, sessions, passwords and email verification' },
        { name: 'users', description: 'User accounts and profiles' },
        { name: 'roles', description: 'Roles and their permissions' },
        { name: 'audit', description: 'The audit trail' },
        { name: 'analytics', description: 'Sign-up and login figures from the audit trail' },
        { name: 'events', description: 'Real-time events: Server-Sent Events, WebSocket, tickets for browsers' },
        { name: 'invitations', description: 'Inviting people to create an account' },
        { name: 'graphql', description: 'GraphQL over the same services and permission checks (schema: openapi/schema.graphql)' },
        { name: 'webhooks', description: 'Webhooks: events POSTed to your URL, signed per Standard Webhooks, and their delivery log' },
        { name: 'test', description: 'For test pipelines: served only with TEST_ENDPOINTS=true, never in production' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'The accessToken of a login. Checked as RFC8725 advises: HS256 only (alg none and every other algorithm refused), ' +
              'issuer, audience, expiry and token type required and verified; also refused once its login is revoked or its user deleted or suspended.'
          },
          eventTicket: {
            type: 'apiKey',
            in: 'query',
            name: 'ticket',
            description: 'For the event streams only, from clients that cannot send headers (browsers\' EventSource and WebSocket): ' +
              'a ticket from POST /api/v1/events/ticket, single use and valid 60 s, masked in logs.'
          }
        },
        headers: SHARED_HEADERS,
        parameters: SHARED_PARAMETERS,
        // What any operation can answer, documented once (the contract allows exactly these as shared responses).
        responses: Object.fromEntries(Object.entries(SHARED_RESPONSES).map(([name, description]) => [name, {
          description,
          headers: headerRefs(BEFORE_ROUTING.includes(name)
            ? ['X-Request-Id']
            : ['X-Request-Id', 'Access-Control-Allow-Origin', ...(name === 'ServiceUnavailable' ? ['Retry-After'] : [])]),
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } }
        }]))
      }
    },
    transformObject: document => sharedParameters(sharedHeaders(defaultsOptional('openapiObject' in document ? document.openapiObject : document.swaggerObject))),
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`)
    }
  })
  await fastify.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}, { name: 'swagger' })

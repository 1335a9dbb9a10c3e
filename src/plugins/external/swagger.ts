import fp from 'fastify-plugin'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'

export const OPENAPI_INFO = {
  title: 'User Management API',
  description: 'Accounts, logins, roles, profiles and an audit trail. Every response uses the success or error envelope.',
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

interface Parameter { in: string, required?: boolean, schema?: { default?: unknown } }

/** A parameter with a default need not be sent: TypeBox lists it as required because the handler always sees a value. */
function defaultsOptional<T extends object> (document: T): T {
  for (const item of Object.values<Record<string, { parameters?: Parameter[] }>>((document as { paths?: any }).paths ?? {})) {
    for (const operation of Object.values(item)) {
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in !== 'path' && parameter.schema?.default !== undefined) delete parameter.required
      }
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
      servers: [{ url: '/' }],
      tags: [
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'auth', description: 'Logins, tokens, sessions, passwords and email verification' },
        { name: 'users', description: 'User accounts and profiles' },
        { name: 'roles', description: 'Roles and their permissions' },
        { name: 'audit', description: 'The audit trail' },
        { name: 'test', description: 'For test pipelines: served only with TEST_ENDPOINTS=true, never in production' }
      ],
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        // What any operation can answer, documented once (the contract allows exactly these as shared responses).
        responses: Object.fromEntries(Object.entries(SHARED_RESPONSES).map(([name, description]) => [name, {
          description,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } }
        }]))
      }
    },
    transformObject: document => defaultsOptional('openapiObject' in document ? document.openapiObject : document.swaggerObject),
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`)
    }
  })
  await fastify.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}, { name: 'swagger' })

import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import pino from 'pino'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { TSchema } from '@sinclair/typebox'
import type { Config } from './config.js'
import { createValidatorCompiler } from './lib/validation.js'
import { requestIdOf } from './lib/request-id.js'
import { buildSerializer } from './lib/serializer.js'
import { lazyChildLoggerFactory } from './lib/request-logger.js'
import { bufferedStdout, type LogStream } from './lib/log-stream.js'
import errorHandler, { answerClientError, routeFrameworkError } from './plugins/app/error-handler.js'
import swagger from './plugins/external/swagger.js'
import deprecation from './plugins/app/deprecation.js'
import database from './plugins/app/db.js'
import auth from './plugins/app/auth.js'
import services from './plugins/app/services.js'
import idempotency from './plugins/app/idempotency.js'
import healthRoutes from './routes/health.js'
import authRoutes from './routes/auth.js'
import oidcRoutes from './routes/oidc.js'
import mfaRoutes from './routes/mfa.js'
import usersRoutes from './routes/users.js'
import redis from './plugins/external/redis.js'
import helmet from './plugins/external/helmet.js'
import cors from './plugins/external/cors.js'
import compress from './plugins/external/compress.js'
import overload from './plugins/external/overload.js'
import rateLimit from './plugins/external/rate-limit.js'
import metrics from './plugins/app/metrics.js'
import emailDelivery from './plugins/app/email-delivery.js'
import jobs from './plugins/app/jobs.js'
import retention from './plugins/app/retention.js'
import webhookDelivery from './plugins/app/webhook-delivery.js'
import webhooksRoutes from './routes/webhooks.js'
import rolesRoutes from './routes/roles.js'
import auditRoutes from './routes/audit.js'
import analyticsRoutes from './routes/analytics.js'
import invitationsRoutes from './routes/invitations.js'
import metricsRoutes from './routes/metrics.js'
import testRoutes from './routes/test.js'
import passkeyRoutes from './routes/passkeys.js'
import graphqlRoutes from './routes/graphql/index.js'
import eventsRoutes from './routes/events.js'
import websocket from './plugins/external/websocket.js'
import eventStream from './plugins/app/event-stream.js'
import { EventSchema } from '../schemas/event.js'
import { RoleSchema } from '../schemas/role.js'
import { AuditLogEntrySchema, AuditPaginationSchema } from '../schemas/audit.js'
import { AnalyticsBucketSchema, AnalyticsSummarySchema, AnalyticsTotalsSchema } from '../schemas/analytics.js'
import { ErrorDetailSchema, ErrorSchema } from '../schemas/common.js'
import { ProfileSchema, UserSchema, UserStatusSchema, UserFieldsSchema, PaginationSchema, UserExportSchema } from '../schemas/user.js'
import { MeSchema, PermissionSchema, SessionSchema, TokenPairSchema } from '../schemas/auth.js'
import { MfaChallengeSchema, MfaStatusSchema } from '../schemas/mfa.js'
import { ReadinessSchema } from '../schemas/health.js'
import { CapturedEmailSchema } from '../schemas/test.js'
import { AuthenticationOptionsSchema, AuthenticationResponseSchema, PasskeySchema, RegistrationOptionsSchema, RegistrationResponseSchema } from '../schemas/passkeys.js'
import { IdentitySchema, OidcProviderSchema } from '../schemas/oidc.js'
import { InvitationSchema } from '../schemas/invitation.js'
import { GraphqlErrorSchema } from '../schemas/graphql.js'
import { WebhookDeliverySchema, WebhookSchema } from '../schemas/webhook.js'
import { ItemErrorSchema } from '../schemas/user-bulk.js'
import { ConsentChangeSchema, ConsentSchema } from '../schemas/consent.js'
import { serviceUnavailable, unsupportedMediaType } from './errors.js'

const MERGE_PATCH = /^\s*application\/merge-patch\+json/i

declare module 'fastify' {
  interface FastifyInstance { config: Config }
}

/** Components registered once and referenced by $id: they appear by name in the OpenAPI document. */
export const SHARED_SCHEMAS: TSchema[] = [
  ErrorDetailSchema, ErrorSchema, UserStatusSchema, ProfileSchema, UserSchema, UserFieldsSchema, PaginationSchema,
  UserExportSchema, PermissionSchema, TokenPairSchema, MfaChallengeSchema, MfaStatusSchema, MeSchema, SessionSchema, ReadinessSchema,
  RoleSchema, AuditLogEntrySchema, AuditPaginationSchema, AnalyticsTotalsSchema, AnalyticsBucketSchema, AnalyticsSummarySchema, CapturedEmailSchema,
  PasskeySchema, RegistrationOptionsSchema, AuthenticationOptionsSchema, RegistrationResponseSchema, AuthenticationResponseSchema,
  OidcProviderSchema, IdentitySchema, InvitationSchema, GraphqlErrorSchema, WebhookSchema, WebhookDeliverySchema, ItemErrorSchema, EventSchema,
  ConsentSchema, ConsentChangeSchema
]

const REDACT = [
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  '*.password', '*.newPassword', '*.currentPassword', '*.passwordHash', '*.token', '*.refreshToken', '*.accessToken',
  // Second factors: a logged body (or answer) must not carry a code, a recovery code or a TOTP secret.
  // `code` only under a body: `*.code` would also hide every logged error's code.
  'body.code', 'req.body.code', '*.recoveryCode', '*.recoveryCodes', '*.mfaToken', '*.secret', '*.otpauthUrl', '*.qrSvg',
  // An authenticator's answer (passkey login, registration or second factor): its signature logs a
  // user in while the challenge is live, its attestation carries key material.
  'body.response.response', 'body.passkey.response',
  // The request line's URL: an OpenID provider's redirect back brings its authorization code and our state.
  'req.url',
  // A logged database error carries the statement's values (the embedded driver adds params) and,
  // for a constraint violation, the failing row in its detail: either may hold a password hash.
  'err.params', 'err.detail'
]

/**
 * A URL keeps its path and query, without the values of the OAuth parameters a callback receives
 * or of an event-stream ticket (?ticket=, GET /api/v1/events and /ws): credentials in a URL.
 */
const URL_SECRETS = /([?&](?:code|state|ticket)=)[^&#]*/g
const censor = (value: unknown, path: string[]) => path.length === 2 && path[0] === 'req' && path[1] === 'url'
  ? String(value).replace(URL_SECRETS, '$1[redacted]')
  : '[redacted]'

export function loggerOptions (config: Config, stdout: LogStream): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: REDACT, censor },
    ...(process.stdout.isTTY && !config.production
      ? { transport: { target: 'pino-pretty' } }
      : { stream: stdout.stream, hooks: stdout.hooks })
  }
}

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
}

/** The whole application as a Fastify instance, not yet listening: the server and the tests both build it here. */
export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const stdout = options.logger ? undefined : bufferedStdout()
  const app = Fastify({
    logger: stdout ? loggerOptions(config, stdout) : options.logger,
    genReqId: requestIdOf,
    // Fastify accepts a hop count too; its types only lack it.
    trustProxy: config.trustProxy as boolean | string | string[],
    bodyLimit: config.bodyLimit,
    // Our onRequest hook below answers requests that arrive while closing, in the envelope.
    return503OnClosing: false,
    // One line per request (the onResponse hook below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLoggerFactory,
    // Starting the embedded database and migrating can take well over Fastify's default 10 s on a busy machine.
    pluginTimeout: 120_000,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    frameworkErrors: routeFrameworkError,
    clientErrorHandler: answerClientError,
    ajv: { customOptions: { removeAdditional: false } },
    schemaController: { compilersFactory: { buildSerializer } }
  }).withTypeProvider<TypeBoxTypeProvider>()

  if (stdout) app.addHook('onClose', async () => stdout.close())
  // Also checks the GraphQL resolvers' arguments against the REST routes' schemas.
  const validatorCompiler = createValidatorCompiler(SHARED_SCHEMAS)
  app.setValidatorCompiler(validatorCompiler)
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema)

  // The request log hooks exist only at levels that print them: none on the hot path at warn.
  // pino's own level numbers (silent is Infinity); with the logger off there are none.
  const levels: Record<string, number> = (app.log as Partial<pino.Logger>).levels?.values ?? {}
  const logs = (level: string) => levels[app.log.level] <= levels[level]
  if (logs('info')) {
    app.addHook('onResponse', async (request, reply) => {
      request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
    })
  }
  if (logs('debug')) {
    app.addHook('onRequest', async request => { request.log.debug({ req: request }, 'incoming request') })
  }
  let closing = false
  app.addHook('preClose', done => { closing = true; done() })
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
    if (closing) {
      reply.header('connection', 'close')
      throw serviceUnavailable('The server is shutting down; retry, another instance will answer', undefined, 1)
    }
  })
  // application/merge-patch+json is a PATCH body; elsewhere it is the wrong media type (in any case, as the parser
  // matches it). Refused where the parser refuses other media types: after the rate limit and authentication.
  app.addHook('preParsing', async request => {
    if (request.method !== 'PATCH' && MERGE_PATCH.test(request.headers['content-type'] ?? '')) throw unsupportedMediaType()
  })
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'))
  // The API speaks JSON only: a text/plain body is 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain')

  await app.register(errorHandler)
  // Before swagger: its onRoute hook reads the schema this one marks deprecated.
  await app.register(deprecation)
  await app.register(swagger)
  await app.register(fp(async f => { f.decorate('config', config) }, { name: 'config' }))
  // Before anything that does work per request: headers, CORS and rate limits apply to every answer.
  await app.register(redis)
  await app.register(helmet)
  await app.register(compress)
  await app.register(cors)
  await app.register(metrics)
  await app.register(rateLimit)
  await app.register(overload)
  await app.register(websocket)
  await app.register(database)
  await app.register(auth)
  await app.register(jobs)
  await app.register(emailDelivery)
  await app.register(services)
  // Before the routes: it adds its hooks to each POST as the route is added.
  await app.register(idempotency)
  await app.register(retention)
  await app.register(webhookDelivery)
  await app.register(eventStream)

  await app.register(healthRoutes)
  await app.register(authRoutes, { prefix: '/api/v1/auth' })
  await app.register(passkeyRoutes, { prefix: '/api/v1/auth/passkeys' })
  await app.register(oidcRoutes, { prefix: '/api/v1/auth' })
  await app.register(mfaRoutes, { prefix: '/api/v1/auth/mfa' })
  await app.register(usersRoutes, { prefix: '/api/v1/users' })
  await app.register(rolesRoutes, { prefix: '/api/v1/roles' })
  await app.register(auditRoutes, { prefix: '/api/v1/audit-logs' })
  await app.register(analyticsRoutes, { prefix: '/api/v1/analytics' })
  await app.register(invitationsRoutes, { prefix: '/api/v1/invitations' })
  await app.register(graphqlRoutes, { validatorCompiler })
  await app.register(webhooksRoutes, { prefix: '/api/v1/webhooks' })
  await app.register(eventsRoutes, { prefix: '/api/v1/events' })
  if (config.testEndpoints) await app.register(testRoutes, { prefix: '/api/v1/test' })
  await app.register(metricsRoutes)
  return app
}

import fp from 'fastify-plugin'
import fastifyCors from '@fastify/cors'

const PREFLIGHT_MAX_AGE_SEC = 600

/**
 * CORS for the browser origins listed in CORS_ORIGINS (exact matches; none listed: no
 * cross-origin access). Credentials are allowed, so the list is never a wildcard.
 */
export default fp(async function cors (fastify) {
  const origins = fastify.config.corsOrigins.filter(origin => origin !== '*')
  if (origins.length === 0) return
  await fastify.register(fastifyCors, {
    origin: origins,
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'if-match', 'if-none-match', 'x-request-id'],
    exposedHeaders: ['x-request-id', 'etag', 'location', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    maxAge: PREFLIGHT_MAX_AGE_SEC,
    // A preflight without its headers is not an error worth a non-envelope 400.
    strictPreflight: false
  })
}, { name: 'cors', dependencies: ['config'] })

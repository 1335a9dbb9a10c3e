import fp from 'fastify-plugin'
import fastifyHelmet from '@fastify/helmet'

/**
 * Security headers on every response. The API serves JSON only, so its CSP allows nothing and
 * no page may frame it; the Swagger UI under /docs replaces the CSP with its own (staticCSP),
 * which allows its own scripts and styles.
 */
export default fp(async function helmet (fastify) {
  await fastify.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] }
    },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: { action: 'deny' }
  })
}, { name: 'helmet' })

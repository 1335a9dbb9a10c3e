import fp from 'fastify-plugin'
import helmet from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'

const options = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] }
  },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
  referrerPolicy: { policy: 'no-referrer' as const },
  xFrameOptions: { action: 'deny' as const }
}

/** Runs helmet once against a recording response: its headers never depend on the request. */
function helmetHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: string | number | readonly string[]) { headers[name.toLowerCase()] = String(value) },
    removeHeader () {}
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, () => {})
  return headers
}

/**
 * Security headers on every response. The API serves JSON only, so its CSP allows nothing and
 * no page may frame it; the Swagger UI under /docs replaces the CSP with its own (staticCSP),
 * which allows its own scripts and styles. helmet computes the headers once at start instead of
 * on every response (measured: a few percent of a get_user request's CPU).
 */
export default fp(async function securityHeaders (fastify) {
  const headers = helmetHeaders()
  fastify.addHook('onRequest', async (_request, reply) => { reply.headers(headers) })
}, { name: 'helmet' })

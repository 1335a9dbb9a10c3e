import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyReply, FastifyRequest, onSendHookHandler, preHandlerAsyncHookHandler } from 'fastify'
import { AppError, unauthorized } from '../../errors.js'
import { createAccessTokenSigner } from '../../lib/access-token.js'
import type { AccessClaims } from '../../services/auth.js'
import { createAuthStateService, type AuthStateService } from '../../services/auth-state.js'
import { authorizeActor, type Access, type Actor } from '../../services/context.js'
import type { Permission } from '../../../schemas/auth.js'
import '../../lib/route-config.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: preHandlerAsyncHookHandler
    /** A permission (with `self`: or the user itself, by the route's :id), or an entry of ACCESS (src/services/context.ts). */
    authorize: (access: Permission | Access, options?: { self?: boolean }) => preHandlerAsyncHookHandler
    signAccessToken: (claims: AccessClaims) => string
    /** Whether a login is still live, and its permissions now (the event streams check it while they run). */
    authStates: AuthStateService
  }
  interface FastifyRequest { actor: Actor | null }
}
declare module '@fastify/jwt' {
  interface FastifyJWT { payload: AccessClaims, user: AccessClaims & { iat: number, exp: number } }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value)

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

const tokenError = (code: string | undefined) => code === 'FAST_JWT_EXPIRED'
  ? new AppError(401, 'TOKEN_EXPIRED', 'The access token has expired')
  : unauthorized('The access token is missing or invalid')

/** JWT access tokens: HS256 only, issuer and audience pinned and required; the user, its status and its login are checked live. */
export default fp(async function auth (fastify) {
  const { config } = fastify
  await fastify.register(fastifyJwt, {
    // Verification only: access tokens are signed by signAccessToken below.
    secret: config.jwtSecret,
    // cache: a token seen before is not verified again (fast-jwt still honours its exp)
    verify: { algorithms: ['HS256'], allowedIss: config.jwtIssuer, allowedAud: config.jwtAudience, requiredClaims: ['sub', 'sid', 'exp', 'iat', 'iss', 'aud'], cache: 10_000 }
  })
  fastify.decorateRequest('actor', null)

  const authStates = createAuthStateService({ db: fastify.database.db })
  fastify.decorate('authStates', authStates)
  await fastify.database.listen('auth_state_changed', {
    onMessage: userId => authStates.changed(userId),
    onListening: listening => authStates.setCaching(listening)
  })
  // Another instance's writes arrive as notifications; this instance's own writes must also be
  // visible to the caller's very next request, which may beat the notification: clear first.
  // Chosen per route as it is added, from its own `config.keepsAuthState`, so reads carry no
  // such hook and writes no per-request lookup.
  const clearAlways: onSendHookHandler = async (_request, _reply, payload) => {
    authStates.forgetAll()
    return payload
  }
  const clearOnError: onSendHookHandler = async (_request, reply, payload) => {
    if (reply.statusCode >= 400) authStates.forgetAll()
    return payload
  }
  fastify.addHook('onRoute', route => {
    const methods = [route.method].flat()
    if (methods.every(method => SAFE_METHODS.has(method))) return
    route.onSend = [route.onSend ?? []].flat().concat(route.config?.keepsAuthState ? clearOnError : clearAlways)
  })
  fastify.decorate('signAccessToken', createAccessTokenSigner({
    secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, expirySec: config.jwtExpirySec
  }))

  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    let claims: AccessClaims
    try {
      // The instance's verifier (fast-jwt, cached) straight on the Bearer token: request.jwtVerify
      // merges its options into new objects and decodes the token once more on every request.
      const [scheme, token, extra] = (request.headers.authorization ?? '').split(' ')
      if (scheme.toLowerCase() !== 'bearer' || !token || extra !== undefined) throw unauthorized('The access token is missing or invalid')
      claims = fastify.jwt.verify<AccessClaims>(token)
    } catch (err) {
      throw tokenError((err as { code?: string }).code)
    }
    // Ids are checked before they reach SQL: a malformed one would otherwise be a database error, not a 401.
    if (claims.typ !== 'access' || !isUuid(claims.sub) || !isUuid(claims.sid)) throw unauthorized('The access token is missing or invalid')
    // Before the login's state is read: a user over its budget costs no lookup.
    await fastify.limitUser(request, reply, claims.sub)
    request.actor = await authStates.actorOf(claims.sub, claims.sid)
  })

  fastify.decorate('authorize', (access: Permission | Access, options: { self?: boolean } = {}) => {
    const rule: Access = typeof access === 'string' ? { permission: access, ...options } : access
    return async function authorize (request: FastifyRequest, _reply: FastifyReply) {
      authorizeActor(request.actor, rule, (request.params as { id?: string }).id)
    }
  })
}, { name: 'auth', dependencies: ['config', 'database', 'rate-limit'] })

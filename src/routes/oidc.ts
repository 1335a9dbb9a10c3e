import fastifyCookie from '@fastify/cookie'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema } from '../../schemas/common.js'
import { LoginResponseSchema } from '../../schemas/mfa.js'
import {
  IdentityListResponseSchema, OidcAuthorizeQuerySchema, OidcCallbackQuerySchema, OidcExchangeSchema,
  OidcProviderListResponseSchema, OidcProviderParamsSchema, RedirectResponse
} from '../../schemas/oidc.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
const anonymous: typeof security = []
const tags = ['auth']
const AUTH_BUDGET = 'Rate limited by AUTH_RATE_LIMIT_MAX per client IP, counted for this route alone.'

/** The browser half of a flow's binding: set by authorize, read and cleared by the callback, sent nowhere else. */
const FLOW_COOKIE = 'oidc_flow'
const FLOW_COOKIE_PATH = '/api/v1/auth/oidc'
const FLOW_COOKIE_MAX_AGE_SEC = 600

/** Sign-in with external OpenID Connect providers, and the caller's linked identities (mounted under /api/v1/auth). */
const oidcRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { oidcService, authenticate, config } = fastify
  // Only these routes read cookies: everything else in the API takes Bearer tokens.
  await fastify.register(fastifyCookie)
  const cookieOptions = {
    path: FLOW_COOKIE_PATH,
    httpOnly: true,
    // Lax: the provider's redirect back is a top-level GET, which carries it.
    sameSite: 'lax' as const,
    secure: config.publicUrl.startsWith('https:')
  }
  fastify.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'no-store') })

  fastify.get('/oidc/providers', {
    schema: {
      operationId: 'listOidcProviders',
      tags,
      summary: 'The external OpenID Connect providers users can sign in with',
      description: 'Anonymous. The names configured in OIDC_PROVIDERS, in that order.',
      security: anonymous,
      response: { 200: OidcProviderListResponseSchema, ...errors(429) }
    }
  }, async () => ({ success: true as const, data: oidcService.providers() }))

  fastify.get('/oidc/:provider/authorize', {
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'authorizeOidc',
      tags,
      summary: 'Start signing in with a provider: 302 to its authorization endpoint',
      description: 'Anonymous, for a browser. Sends the browser to the provider (authorization code flow with PKCE S256, state and nonce) ' +
        'and sets an HttpOnly cookie binding the flow to this browser (10 min). An unknown provider is 404; a redirectUri that is not one ' +
        'of OIDC_REDIRECT_URIS is 400; a provider that cannot be reached is 503 with Retry-After. ' + AUTH_BUDGET,
      security: anonymous,
      params: OidcProviderParamsSchema,
      querystring: OidcAuthorizeQuerySchema,
      response: { 302: RedirectResponse("Found: Location is the provider's authorization endpoint"), ...errors(400, 404, 429, 503) }
    }
  }, async (request, reply) => {
    const { location, browserSecret } = await oidcService.authorize(request.params.provider, request.query.redirectUri)
    reply.setCookie(FLOW_COOKIE, browserSecret, { ...cookieOptions, maxAge: FLOW_COOKIE_MAX_AGE_SEC })
    return reply.redirect(location, 302)
  })

  fastify.get('/oidc/:provider/callback', {
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'oidcCallback',
      tags,
      summary: "The provider's redirect back: 302 to the flow's redirectUri with a one-time code, or with error",
      description: 'Anonymous, for a browser coming back from the provider. The state must be one this service issued, unspent and ' +
        'unexpired, and the browser must bring the cookie the authorize route set. The ID token is validated (issuer, audience, nonce, ' +
        'expiry, signature), then the user linked to (provider, sub) signs in; else the local user with that email is linked when both ' +
        'the provider (email_verified) and the account have verified it; else a user is created (role user, no password). Location is ' +
        'the redirectUri with code (single use, 60 s; exchange it at /auth/oidc/exchange) or with error: invalid_state, access_denied, ' +
        'provider_error, authentication_failed, email_required, account_exists (the email belongs to an account that cannot be linked, ' +
        'as either side has not verified it; no second account is made), account_unavailable or email_not_verified. An unknown state ' +
        'has no redirectUri of its own: the first of OIDC_REDIRECT_URIS is used. An unknown provider is 404. ' + AUTH_BUDGET,
      security: anonymous,
      params: OidcProviderParamsSchema,
      querystring: OidcCallbackQuerySchema,
      response: { 302: RedirectResponse('Found: Location is the redirectUri with code or error'), ...errors(400, 404, 429) }
    }
  }, async (request, reply) => {
    const query = new URL(request.url, 'http://callback.invalid').searchParams
    const location = await oidcService.callback(contextOf(request), request.params.provider, query, request.cookies[FLOW_COOKIE])
    reply.clearCookie(FLOW_COOKIE, cookieOptions)
    return reply.redirect(location, 302)
  })

  fastify.post('/oidc/exchange', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'exchangeOidcCode',
      tags,
      summary: "Exchange the callback's one-time code for the login answer",
      description: 'Anonymous: the code is the credential. Answers as a login does; the access token carries amr ["oidc"]. An unknown, ' +
        'spent or expired code is 400 INVALID_TOKEN; an account suspended since is 401; a pending one is 403 when ' +
        `REQUIRE_EMAIL_VERIFICATION is on. ${AUTH_BUDGET}`,
      security: anonymous,
      body: OidcExchangeSchema,
      response: { 200: LoginResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    return { success: true as const, data: await oidcService.exchange(contextOf(request), request.body.code) }
  })

  fastify.get('/identities', {
    onRequest: authenticate,
    schema: {
      operationId: 'listIdentities',
      tags,
      summary: "The caller's linked provider identities",
      description: 'Any authenticated caller, its own identities only.',
      security,
      response: { 200: IdentityListResponseSchema, ...errors(401, 429) }
    }
  }, async request => ({ success: true as const, data: await oidcService.list(contextOf(request)) }))

  fastify.delete('/identities/:id', {
    onRequest: authenticate,
    schema: {
      operationId: 'unlinkIdentity',
      tags,
      summary: 'Unlink one of the caller\'s provider identities',
      description: 'Any authenticated caller, for its own identities only (anyone else\'s is 404). 409 CONFLICT when it is the last ' +
        'way to sign in: the caller has no password and no other identity.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 404, 409, 429) }
    }
  }, async (request, reply) => {
    await oidcService.unlink(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })
}

export default oidcRoutes

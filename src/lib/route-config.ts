/**
 * What a route declares about its own behaviour, in its `config` (as fastify/demo declares
 * `config: { rateLimit }`). The plugins read these once, when the route is added (onRoute), so
 * renaming or moving a route carries its behaviour with it and no request looks anything up.
 * `rateLimit` itself belongs to @fastify/rate-limit (an object there adds its own hook), hence
 * `rateLimitBudget`.
 */
declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Which per-IP budget the route spends (routes under /api/v1 and /graphql only): `api`, the default, is
     * RATE_LIMIT_MAX shared by every route; `auth` is AUTH_RATE_LIMIT_MAX, counted per route, for
     * routes where an anonymous caller tries credentials or tokens.
     */
    rateLimitBudget?: 'api' | 'auth'
    /**
     * A successful answer of this write cannot invalidate anyone's existing access token, so this
     * instance's cached auth states are kept (they are still cleared when it fails). Writes
     * without it clear them before answering.
     */
    keepsAuthState?: boolean
    /**
     * false: the POST ignores Idempotency-Key, because it issues or ends tokens (the logins and
     * their steps, refresh, logout) and its answer must never be stored. Every other POST under
     * /api/v1 honours the key, except those whose success answer carries a secret or token field,
     * which src/plugins/app/idempotency.ts leaves out by their response schema.
     */
    idempotency?: false
    /**
     * The operation is deprecated (CONTRACT.md "Operations"): since `since`, to be removed at
     * `sunset` (ISO dates). Its answers carry `Deprecation` (RFC 9745) and `Sunset` (RFC 8594),
     * and the OpenAPI document marks it `deprecated` (src/plugins/app/deprecation.ts).
     */
    deprecated?: { since: string, sunset: string }
  }
}

/** The paths that spend the per-IP budgets and carry the x-ratelimit-* headers: the REST API, and GraphQL over the same services. */
export const isRateLimitedPath = (url: string) =>
  url === '/api/v1' || url.startsWith('/api/v1/') || url.startsWith('/api/v1?') || url === '/graphql' || url.startsWith('/graphql?')

import * as client from 'openid-client'
import type { OidcProviderConfig } from '../config.js'
import { serviceUnavailable } from '../errors.js'

/** What a provider told about the person who signed in, its ID token validated. */
export interface ProviderClaims {
  subject: string
  email: string | null
  emailVerified: boolean
  firstName: string | null
  lastName: string | null
}

/** Why a callback failed, as the `error` the browser is sent back with. */
export type SignInFailure = 'access_denied' | 'provider_error' | 'authentication_failed'

export class ProviderSignInError extends Error {
  constructor (readonly reason: SignInFailure, options?: { cause?: unknown }) {
    super(`sign-in with the provider failed: ${reason}`, options)
    this.name = 'ProviderSignInError'
  }
}

/** How long a discovery document is trusted before it is read again, and how long a provider may take to answer. */
const DISCOVERY_TTL_MS = 3600_000
const PROVIDER_TIMEOUT_SEC = 10
const RETRY_AFTER_SEC = 30

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]'])

const text = (value: unknown) => typeof value === 'string' && value.trim() !== '' ? value : null

/**
 * The service as an OpenID Connect relying party (openid-client): each provider's configuration
 * is discovered on first use and cached, a failed discovery is not (the next request tries
 * again). ID tokens are checked for issuer, audience, nonce and expiry by openid-client, and
 * their signature against the provider's keys (non-repudiation checks, which it leaves off by
 * default for tokens that come straight from the token endpoint).
 */
export function createOidcClients (providers: OidcProviderConfig[], publicUrl: string) {
  const byName = new Map(providers.map(p => [p.name, p]))
  const cache = new Map<string, { config: Promise<client.Configuration>, at: number }>()

  async function discover (provider: OidcProviderConfig) {
    const issuer = new URL(provider.issuer)
    // Plain http only for a provider on this machine (development and tests).
    const insecure = issuer.protocol === 'http:' && LOOPBACK.has(issuer.hostname)
    const config = await client.discovery(issuer, provider.clientId, provider.clientSecret, undefined, {
      timeout: PROVIDER_TIMEOUT_SEC,
      execute: insecure ? [client.allowInsecureRequests] : []
    })
    client.enableNonRepudiationChecks(config)
    return config
  }

  function configOf (provider: OidcProviderConfig): Promise<client.Configuration> {
    const cached = cache.get(provider.name)
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.config
    const config = discover(provider)
    cache.set(provider.name, { config, at: Date.now() })
    return config.catch(err => {
      cache.delete(provider.name)
      throw serviceUnavailable(`The sign-in provider ${provider.name} is unavailable, try again shortly`, [{ message: (err as Error).message.slice(0, 200) }], RETRY_AFTER_SEC)
    })
  }

  const callbackUrl = (name: string) => `${publicUrl}/api/v1/auth/oidc/${name}/callback`

  return {
    names: () => providers.map(p => p.name),
    find: (name: string) => byName.get(name),
    callbackUrl,

    /** Where to send the browser: the provider's authorization endpoint with PKCE S256, state and nonce. 503 when the provider cannot be reached. */
    async authorizationUrl (provider: OidcProviderConfig, checks: { state: string, nonce: string, codeVerifier: string }): Promise<string> {
      const config = await configOf(provider)
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: callbackUrl(provider.name),
        scope: provider.scopes.join(' '),
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
        state: checks.state,
        nonce: checks.nonce
      })
      return url.href
    },

    /**
     * The provider's authorization response (the callback's query) exchanged for tokens and the
     * ID token validated; the email comes from the ID token, or from userinfo when the provider
     * keeps it there. Throws ProviderSignInError.
     */
    async completeSignIn (provider: OidcProviderConfig, query: URLSearchParams, checks: { state: string, nonce: string, codeVerifier: string }): Promise<ProviderClaims> {
      let config: client.Configuration
      try { config = await configOf(provider) } catch (err) { throw new ProviderSignInError('provider_error', { cause: err }) }
      const currentUrl = new URL(`${callbackUrl(provider.name)}?${query}`)
      let claims: Record<string, unknown>
      try {
        const tokens = await client.authorizationCodeGrant(config, currentUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true
        })
        const idToken = tokens.claims()
        if (!idToken) throw new Error('no ID token')
        claims = { ...idToken }
        if (claims.email === undefined && tokens.access_token && config.serverMetadata().userinfo_endpoint) {
          const info = await client.fetchUserInfo(config, tokens.access_token, idToken.sub)
          claims = { ...info, ...claims }
        }
      } catch (err) {
        if (err instanceof client.AuthorizationResponseError) throw new ProviderSignInError(err.error === 'access_denied' ? 'access_denied' : 'provider_error', { cause: err })
        throw new ProviderSignInError('authentication_failed', { cause: err })
      }
      const email = text(claims.email)
      return {
        subject: String(claims.sub),
        email: email && email.length <= 254 && /^[^@\s]+@[^@\s]+$/.test(email) ? email.toLowerCase() : null,
        // Only a literal true counts: some providers send the string "true", which is not what the claim is.
        emailVerified: claims.email_verified === true,
        firstName: text(claims.given_name) ?? text(claims.name),
        lastName: text(claims.family_name)
      }
    }
  }
}

export type OidcClients = ReturnType<typeof createOidcClients>

export const oidcRandom = {
  state: client.randomState,
  nonce: client.randomNonce,
  codeVerifier: client.randomPKCECodeVerifier
}

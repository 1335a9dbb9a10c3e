import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import Provider from 'oidc-provider'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { freePort } from './helper.js'

/** What an account of the test provider says about itself (its userinfo claims). */
export interface TestAccount { email?: string, email_verified?: boolean, given_name?: string, family_name?: string }

async function listen (port: number, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler)
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  return server
}

const close = (server: Server) => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) })

/** What one token request to the provider carried and what it answered: secrets the service must keep to itself. */
export interface ObservedGrant { code: string, codeVerifier: string, accessToken: string, idToken: string }

/**
 * A real OpenID Provider (oidc-provider) on a loopback port, with one confidential client whose
 * redirect URI is the service's callback. Its login and consent interaction signs in, without a
 * page, the account the test chose with `next(sub)` (or refuses, with `deny()`). Each successful
 * token request is recorded in `grants` (test/no-secrets-leak.test.ts searches for them).
 */
export async function startOidcProvider (options: { clientId: string, clientSecret: string, redirectUri: string }) {
  const accounts = new Map<string, TestAccount>()
  let nextSub = ''
  let denyNext = false
  const issuer = `http://127.0.0.1:${await freePort()}`
  const provider = new Provider(issuer, {
    clients: [{
      client_id: options.clientId,
      client_secret: options.clientSecret,
      redirect_uris: [options.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post'
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    cookies: { keys: [randomUUID()] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    async findAccount (_ctx, sub) {
      const account = accounts.get(sub)
      if (!account) return undefined
      return { accountId: sub, claims: async () => ({ sub, ...account }) }
    }
  })

  const grants: ObservedGrant[] = []
  provider.on('grant.success', ctx => {
    const params = ctx.oidc.params as Record<string, string>
    const body = ctx.body as Record<string, string>
    grants.push({ code: params.code, codeVerifier: params.code_verifier, accessToken: body.access_token, idToken: body.id_token })
  })

  const server = await listen(Number(new URL(issuer).port), (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interact(req, res).catch(err => { res.statusCode = 500; res.end(String(err)) })
      return
    }
    provider.callback()(req, res)
  })

  async function interact (req: IncomingMessage, res: ServerResponse) {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res)
    if (denyNext) {
      denyNext = false
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user said no' }, { mergeWithLastSubmission: false })
    }
    if (prompt.name === 'login') {
      return provider.interactionFinished(req, res, { login: { accountId: nextSub } }, { mergeWithLastSubmission: false })
    }
    const grant = grantId ? (await provider.Grant.find(grantId))! : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string })
    const details = prompt.details as { missingOIDCScope?: string[], missingOIDCClaims?: string[] }
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '))
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims)
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true })
  }

  return {
    issuer,
    grants,
    /** Adds an account and returns its sub. */
    account (claims: TestAccount, sub = randomUUID()) { accounts.set(sub, claims); return sub },
    /** The account the next interaction signs in. */
    next (sub: string) { nextSub = sub },
    deny () { denyNext = true },
    close: () => close(server)
  }
}

export type IdTokenFault = 'none' | 'wrong_nonce' | 'wrong_audience' | 'expired' | 'wrong_key' | 'wrong_issuer'

/**
 * A hand-written provider that misbehaves on purpose, which oidc-provider will not: discovery,
 * JWKS and a token endpoint whose ID token (signed with jose) has the fault asked for. It takes
 * the nonce from the test, which reads it from the authorization URL the service built.
 */
export async function startFakeProvider (options: { clientId: string }) {
  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const other = await generateKeyPair('RS256')
  const jwk = { ...await exportJWK(publicKey), kid: 'k1', alg: 'RS256', use: 'sig' }
  let fault: IdTokenFault = 'none'
  let nonce = ''
  let claims: Record<string, unknown> = {}
  const json = (res: ServerResponse, body: unknown) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(body)) }
  const issuer = `http://127.0.0.1:${await freePort()}`
  const server = await listen(Number(new URL(issuer).port), (req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/.well-known/openid-configuration') {
      return json(res, {
        issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_post']
      })
    }
    if (path === '/jwks') return json(res, { keys: [jwk] })
    if (path === '/token' && req.method === 'POST') {
      req.resume()
      req.on('end', () => {
        const now = Math.floor(Date.now() / 1000)
        const jwt = new SignJWT({ ...claims, nonce: fault === 'wrong_nonce' ? 'not-the-nonce' : nonce })
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(fault === 'wrong_issuer' ? 'http://127.0.0.1:1' : issuer)
          .setAudience(fault === 'wrong_audience' ? 'another-client' : options.clientId)
          .setSubject(String(claims.sub))
          .setIssuedAt(fault === 'expired' ? now - 7200 : now)
          .setExpirationTime(fault === 'expired' ? now - 3600 : now + 300)
        jwt.sign(fault === 'wrong_key' ? other.privateKey : privateKey)
          .then(idToken => json(res, { access_token: 'at-' + randomUUID(), token_type: 'Bearer', expires_in: 300, id_token: idToken }))
          .catch(() => { res.statusCode = 500; res.end() })
      })
      return
    }
    res.statusCode = 404
    res.end()
  })
  return {
    issuer,
    /** The next token answer: the ID token's claims, the nonce it should carry and the fault it has. */
    answer (next: { claims: Record<string, unknown>, nonce: string, fault: IdTokenFault }) {
      claims = next.claims
      nonce = next.nonce
      fault = next.fault
    },
    close: () => close(server)
  }
}

import { createHmac, createSecretKey } from 'node:crypto'

export interface AccessTokenSigning {
  secret: string
  issuer: string
  audience: string
  expirySec: number
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')

/**
 * Signs HS256 access tokens exactly as fast-jwt's signer would (same claims, same order: aud, iss,
 * iat, exp after the caller's). @fastify/jwt merges its options twice per call, and fast-jwt
 * encodes the constant header and turns base64 into base64url with a callback regex every time:
 * on the refresh route that was the largest cost the hand-written floor does not have (README,
 * Performance). Verifying stays with @fastify/jwt and fast-jwt.
 */
export function createAccessTokenSigner ({ secret, issuer, audience, expirySec }: AccessTokenSigning) {
  const key = createSecretKey(Buffer.from(secret))
  const expiryMs = expirySec * 1000
  return function signAccessToken (claims: object): string {
    const now = Date.now()
    const payload = { ...claims, aud: audience, iss: issuer, iat: Math.floor(now / 1000), exp: Math.floor((now + expiryMs) / 1000) }
    const input = `${HEADER}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
  }
}

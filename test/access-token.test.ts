import t from 'tap'
import { createSigner, createVerifier } from 'fast-jwt'
import { createAccessTokenSigner } from '../src/lib/access-token.js'

const signing = { secret: 'Xk3pQ9vLm2Rt7Wz5Yb8Nc4Hd6Jf1Gs0Ae-signing-test', issuer: 'um-issuer', audience: 'um-audience', expirySec: 900 }

t.test('the access token signer writes exactly the token fast-jwt would, at the same instant', async t => {
  const sign = createAccessTokenSigner(signing)
  const reference = createSigner({ key: signing.secret, algorithm: 'HS256', iss: signing.issuer, aud: signing.audience, expiresIn: signing.expirySec * 1000 })
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  // Instants on and just off a second boundary: iat and exp are both rounded down.
  for (const instant of [1_800_000_000_000, 1_800_000_000_999, 1_800_000_123_456]) {
    Date.now = () => instant
    const claims = { sub: '0b6f1c1e-8a53-4d7e-9a51-2f0c8f0e6a11', sid: '5d1e2c3b-4a59-4b6c-8d7e-9f0a1b2c3d4e', typ: 'access' }
    t.equal(sign(claims), reference(claims), `same token at ${instant}`)
  }
})

t.test('its tokens verify with the issuer, audience and lifetime it was given, and not with another secret', async t => {
  const token = createAccessTokenSigner(signing)({ sub: 'user', sid: 'session', typ: 'access' })
  const verify = createVerifier({ key: signing.secret, algorithms: ['HS256'], allowedIss: signing.issuer, allowedAud: signing.audience })
  const claims = verify(token) as Record<string, unknown>
  t.match(claims, { sub: 'user', sid: 'session', typ: 'access', iss: signing.issuer, aud: signing.audience })
  t.equal((claims.exp as number) - (claims.iat as number), signing.expirySec)
  t.same(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()), { alg: 'HS256', typ: 'JWT' })
  const wrongKey = createVerifier({ key: `${signing.secret}-other`, algorithms: ['HS256'] })
  t.throws(() => wrongKey(token), { code: 'FAST_JWT_INVALID_SIGNATURE' })
})

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor'

/**
 * A software WebAuthn authenticator for the passkey tests (test/passkeys.test.ts,
 * test/no-secrets-leak.test.ts): a real ES256 key pair, a real attestation object (CBOR, fmt
 * none) and real signed assertions, for the relying party below unless a ceremony says otherwise.
 */
export const ORIGIN = 'https://app.example.test'
export const RP_ID = 'app.example.test'

// CTAP2's canonical CBOR, as authenticators write it (tiny-cbor, the one @simplewebauthn/server
// reads with): shortest lengths, plain maps, untagged byte strings. Objects become maps.
const asCbor = (value: unknown): CBORType => value instanceof Uint8Array || value === null || typeof value !== 'object'
  ? value as CBORType
  : value instanceof Map ? value : new Map(Object.entries(value).map(([k, v]) => [k, asCbor(v)]))
const encode = (value: unknown) => encodeCBOR(asCbor(value))
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest()

export const FLAG_UP = 0x01
export const FLAG_UV = 0x04
export const FLAG_AT = 0x40

export interface Ceremony { origin?: string, rpId?: string, flags?: number }

/** A platform authenticator in software: one ES256 credential, a signature counter, the user handle it was given. */
export class SoftAuthenticator {
  readonly credentialId = randomBytes(32)
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  counter = 0
  userHandle?: string

  constructor () {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' }))
  }

  get id () { return b64url(this.credentialId) }

  /** The credential public key as COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y. */
  coseKey (): Buffer {
    const jwk = this.publicKey.export({ format: 'jwk' })
    return Buffer.from(encode(new Map<number, number | Buffer>([
      [1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]
    ])))
  }

  authData (rpId: string, flags: number, attested: boolean): Buffer {
    const counter = Buffer.alloc(4)
    counter.writeUInt32BE(this.counter)
    const parts: Uint8Array[] = [sha256(rpId), Buffer.from([flags]), counter]
    if (attested) {
      const idLength = Buffer.alloc(2)
      idLength.writeUInt16BE(this.credentialId.length)
      parts.push(Buffer.alloc(16), idLength, this.credentialId, this.coseKey())
    }
    return Buffer.concat(parts)
  }

  /** navigator.credentials.create, as RegistrationResponseJSON. */
  create (options: { challenge: string, user: { id: string } }, { origin = ORIGIN, rpId = RP_ID, flags = FLAG_UP | FLAG_UV | FLAG_AT }: Ceremony = {}) {
    this.userHandle = options.user.id
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin, crossOrigin: false }))
    const attestationObject = Buffer.from(encode({ fmt: 'none', attStmt: {}, authData: this.authData(rpId, flags, true) }))
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64url(clientDataJSON), attestationObject: b64url(attestationObject), transports: ['internal', 'hybrid'] },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {}
    }
  }

  /** navigator.credentials.get, as AuthenticationResponseJSON; each use moves the counter on unless told otherwise. */
  get (options: { challenge: string }, { origin = ORIGIN, rpId = RP_ID, flags = FLAG_UP | FLAG_UV, counter }: Ceremony & { counter?: number } = {}) {
    this.counter = counter ?? this.counter + 1
    const authData = this.authData(rpId, flags, false)
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin, crossOrigin: false }))
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.privateKey)
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: { clientDataJSON: b64url(clientDataJSON), authenticatorData: b64url(authData), signature: b64url(signature), userHandle: this.userHandle },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {}
    }
  }
}

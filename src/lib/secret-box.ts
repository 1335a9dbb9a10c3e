import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16

/**
 * Seals small secrets (TOTP secrets) with AES-256-GCM and hashes recovery codes with HMAC-SHA-256,
 * each under its own key derived (HKDF) from the one configured key, so neither use weakens the
 * other. A sealed value is bound to its owner (the additional authenticated data): copied onto
 * another user's row, it no longer opens.
 */
export function createSecretBox (masterKey: Buffer) {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), info, 32))
  const sealKey = derive('mfa secret seal v1')
  const hashKey = derive('mfa recovery code hash v1')
  return {
    /** `v1.<iv>.<tag>.<ciphertext>`, base64url; a fresh IV every time. */
    seal (plaintext: string, owner: string): string {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', sealKey, iv, { authTagLength: TAG_BYTES }).setAAD(Buffer.from(owner))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return [VERSION, iv, cipher.getAuthTag(), ciphertext].map(part => typeof part === 'string' ? part : part.toString('base64url')).join('.')
    },

    /** The plaintext, or an error when the value was sealed with another key, for another owner, or altered. */
    open (sealed: string, owner: string): string {
      const [version, iv, tag, ciphertext] = sealed.split('.')
      if (version !== VERSION || !iv || !tag || ciphertext === undefined) throw new Error('not a sealed value')
      const decipher = createDecipheriv('aes-256-gcm', sealKey, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES })
        .setAAD(Buffer.from(owner))
        .setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
    },

    /**
     * A keyed hash, for values with enough entropy of their own (recovery codes: 50 random bits).
     * A slow password hash buys nothing there: without the key, the table is useless to an
     * attacker, and online guessing is held back by the login lockout, not by hashing cost.
     */
    hash (value: string): string {
      return createHmac('sha256', hashKey).update(value).digest('base64url')
    }
  }
}

export type SecretBox = ReturnType<typeof createSecretBox>

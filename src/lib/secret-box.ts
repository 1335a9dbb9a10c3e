import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16

/** A 32-byte subkey of `masterKey` for one use (HKDF-SHA-256), so no two uses share a key. */
function deriveKey (masterKey: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), info, 32))
}

/** AES-256-GCM with a fresh 96-bit IV, bound to `aad`: the IV, ciphertext and tag. */
function encrypt (key: KeyObject, plaintext: string, aad: string) {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES }).setAAD(Buffer.from(aad))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return { iv, ciphertext, tag: cipher.getAuthTag() }
}

/** The plaintext, or an error when the key, the aad or any byte differs from the sealing's. */
function decrypt (key: KeyObject, iv: string, ciphertext: string, tag: string, aad: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES })
    .setAAD(Buffer.from(aad))
    .setAuthTag(Buffer.from(tag, 'base64url'))
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
}

/**
 * Seals small secrets (TOTP secrets) with AES-256-GCM and hashes recovery codes with HMAC-SHA-256,
 * each under its own key derived (HKDF) from the one configured key, so neither use weakens the
 * other. A sealed value is bound to its owner (the additional authenticated data): copied onto
 * another user's row, it no longer opens.
 */
export function createSecretBox (masterKey: Buffer) {
  const sealKey = createSecretKey(deriveKey(masterKey, 'mfa secret seal v1'))
  const hashKey = deriveKey(masterKey, 'mfa recovery code hash v1')
  return {
    /** `v1.<iv>.<tag>.<ciphertext>`, base64url; a fresh IV every time. */
    seal (plaintext: string, owner: string): string {
      const { iv, ciphertext, tag } = encrypt(sealKey, plaintext, owner)
      return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.')
    },

    /** The plaintext, or an error when the value was sealed with another key, for another owner, or altered. */
    open (sealed: string, owner: string): string {
      const [version, iv, tag, ciphertext] = sealed.split('.')
      if (version !== VERSION || !iv || !tag || ciphertext === undefined) throw new Error('not a sealed value')
      return decrypt(sealKey, iv, ciphertext, tag, owner)
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

/** A key of PII_ENCRYPTION_KEYS: its id (stored beside every value it seals) and its 32 bytes. */
export interface PiiKey { kid: string, key: Buffer }

/** The prefix of a sealed PII value: `pii1.<kid>.<iv>.<ciphertext>.<tag>` (base64url parts). */
export const PII_PREFIX = 'pii1.'

/** How many opened values a keyring keeps (at most about 20 MiB: bios are up to 2000 characters; most are short). */
const OPENED_MAX = 5000

/**
 * Personal data at rest (PII_ENCRYPTION_KEYS): AES-256-GCM under the first key, opened under any
 * key of the ring (rotation), each value bound to its field (the aad: `phone`, `ip`...) so a
 * value cannot be moved into another field. The value names its key itself, so it stays
 * readable wherever the database copies it (the read model, event snapshots, audit changes).
 * A value without the prefix is clear (written before the keys were configured) and is
 * returned as it is, until `npm run pii:rotate` seals it.
 */
export function createPiiKeyring (keys: readonly PiiKey[]) {
  if (keys.length === 0) throw new Error('a keyring needs at least one key')
  const ring = new Map(keys.map(({ kid, key }) => [kid, {
    seal: createSecretKey(deriveKey(key, 'pii seal v1')),
    index: deriveKey(key, 'pii blind index v1'),
    check: createHmac('sha256', deriveKey(key, 'pii key check v1')).update(kid).digest('base64url')
  }]))
  const currentKid = keys[0].kid
  const current = ring.get(currentKid)!
  const currentPrefix = `${PII_PREFIX}${currentKid}.`
  const opened = new Map<string, string>()
  const indexOf = (key: Buffer, digits: string) => createHmac('sha256', key).update(digits).digest('base64url')
  return {
    currentKid,
    kids: [...ring.keys()],

    seal (plaintext: string, field: string): string {
      const { iv, ciphertext, tag } = encrypt(current.seal, plaintext, field)
      return `${currentPrefix}${iv.toString('base64url')}.${ciphertext.toString('base64url')}.${tag.toString('base64url')}`
    },

    /**
     * The clear value; a clear value passes as it is; a value under an unknown key, or altered,
     * throws. A Decipheriv costs 10-20 µs of CPU, 40 of them a user page: the values opened last
     * are kept (the process holds them in clear anyway while it answers), keyed by field, key
     * id, IV and tag: no other value shares them (a fresh IV each time; the tag authenticates
     * the ciphertext), and the key stays short whatever the value's length.
     */
    open (value: string, field: string): string {
      if (!value.startsWith(PII_PREFIX)) return value
      const [, kid, iv, ciphertext, tag] = value.split('.')
      const cacheKey = `${field}.${kid}.${iv}.${tag}`
      const known = opened.get(cacheKey)
      if (known !== undefined) return known
      const key = ring.get(kid)
      if (!key || !iv || ciphertext === undefined || !tag) throw new Error(`a ${field} value is sealed under key id "${kid}", which PII_ENCRYPTION_KEYS does not hold`)
      const clear = decrypt(key.seal, iv, ciphertext, tag, field)
      if (opened.size >= OPENED_MAX) opened.delete(opened.keys().next().value!)
      opened.set(cacheKey, clear)
      return clear
    },

    /** Whether the value is sealed under the current key already (what rotation leaves alone). */
    isCurrent: (value: string) => value.startsWith(currentPrefix),

    /**
     * The blind index of a phone number: HMAC-SHA-256 of its digits under a key derived from the
     * current key, so equal numbers (however punctuated) match and nothing else can be learned.
     * phoneIndexes gives it under every key, for searching while a rotation is under way.
     */
    phoneIndex: (phone: string) => indexOf(current.index, phoneDigits(phone)),
    phoneIndexes: (phone: string) => [...ring.values()].map(key => indexOf(key.index, phoneDigits(phone))),

    /** A check value per key id (stored in pii_keys), so a wrong key under a known id is refused at start. */
    checkOf: (kid: string) => ring.get(kid)?.check
  }
}

export type PiiKeyring = ReturnType<typeof createPiiKeyring>

/** A phone number as compared: its digits only (`+1 (555) 010-2000` → `15550102000`). */
export function phoneDigits (phone: string): string {
  return phone.replace(/\D/g, '')
}

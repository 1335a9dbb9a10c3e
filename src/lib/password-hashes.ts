import { pbkdf2, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto'
import { promisify } from 'node:util'
import { deserialize } from '@phc/format'
import argon2 from 'argon2'
import bcrypt from 'bcryptjs'

/**
 * The password hash formats a login accepts: our own argon2id, and those of the systems users are
 * carried over from (the import keeps their hashes; the first login replaces them, see
 * PasswordHasher.needsRehash).
 *
 * - argon2id, argon2i (and argon2d): PHC strings, `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
 * - bcrypt: `$2a$`, `$2b$`, `$2y$` (one algorithm; the letters name fixed bugs of other
 *   implementations). bcrypt reads only the first 72 bytes of a password: a legacy bcrypt hash is
 *   verified exactly as bcrypt does (so every password the old system took still works), and the
 *   login that verifies it stores an argon2id hash of the whole password, which ends the truncation
 *   for that account. New hashes are never bcrypt.
 * - scrypt: PHC strings, `$scrypt$ln=<log2 N>,r=<r>,p=<p>$salt$hash` (passlib's form).
 * - PBKDF2-SHA256: Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`, the salt as text.
 */
export type HashKind = 'argon2id' | 'argon2i' | 'argon2d' | 'bcrypt' | 'scrypt' | 'pbkdf2_sha256'

const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/
const PBKDF2 = /^pbkdf2_sha256\$([1-9]\d{0,7})\$([^$]{1,200})\$([A-Za-z0-9+/]{43}=)$/
// Bounds on what a stored hash may ask of this machine: a planted or corrupt one must not stall it.
const MAX_PBKDF2_ITERATIONS = 10_000_000
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024

const scryptAsync = promisify(scrypt) as (password: BinaryLike, salt: BinaryLike, keylen: number, options: ScryptOptions) => Promise<Buffer>
const pbkdf2Async = promisify(pbkdf2)

/** The kind of a hash this module can verify, or undefined for anything else (a malformed hash included). */
export function hashKindOf (hash: string): HashKind | undefined {
  if (BCRYPT.test(hash)) return 'bcrypt'
  if (PBKDF2.test(hash)) return 'pbkdf2_sha256'
  if (hash.startsWith('$scrypt$')) return scryptParams(hash) ? 'scrypt' : undefined
  const id = /^\$(argon2id|argon2i|argon2d)\$/.exec(hash)?.[1] as HashKind | undefined
  if (id && phcOf(hash)?.hash) return id
  return undefined
}

function phcOf (hash: string) {
  try { return deserialize(hash) } catch { return undefined }
}

function scryptParams (hash: string) {
  const phc = phcOf(hash)
  const { ln, r, p } = phc?.params ?? {}
  if (!phc?.salt || !phc.hash || phc.hash.length < 16 || phc.hash.length > 128) return undefined
  if (![ln, r, p].every(n => Number.isInteger(n) && (n as number) > 0) || (ln as number) > 24) return undefined
  const N = 2 ** (ln as number)
  const maxmem = 128 * N * (r as number) * (p as number) + 1024 * 1024
  if (maxmem > MAX_SCRYPT_MEMORY) return undefined
  return { N, r: r as number, p: p as number, maxmem, salt: phc.salt, hash: phc.hash }
}

/** The same-length comparison of a computed digest with the stored one, in constant time. */
const same = (computed: Buffer, stored: Buffer) => computed.length === stored.length && timingSafeEqual(computed, stored)

/**
 * Whether the password matches the hash, for every kind above. Never throws: a malformed or
 * unknown hash is false (the caller spends a dummy verification for it, as for an unknown account).
 */
export async function verifyPasswordHash (hash: string, plain: string): Promise<boolean> {
  try {
    switch (hashKindOf(hash)) {
      case 'argon2id': case 'argon2i': case 'argon2d':
        return await argon2.verify(hash, plain)
      case 'bcrypt':
        return await bcrypt.compare(plain, hash)
      case 'scrypt': {
        const params = scryptParams(hash)!
        const computed = await scryptAsync(plain, params.salt, params.hash.length, { N: params.N, r: params.r, p: params.p, maxmem: params.maxmem })
        return same(computed, params.hash)
      }
      case 'pbkdf2_sha256': {
        const [, iterations, salt, digest] = PBKDF2.exec(hash)!
        if (Number(iterations) > MAX_PBKDF2_ITERATIONS) return false
        const stored = Buffer.from(digest, 'base64')
        return same(await pbkdf2Async(plain, salt, Number(iterations), stored.length, 'sha256'), stored)
      }
      default:
        return false
    }
  } catch {
    return false
  }
}

/**
 * Whether an argon2id hash is weaker than the current parameters (less memory or fewer passes,
 * or an older version): a stronger one is left as it is. Any other kind always is.
 */
export function isWeakerThan (hash: string, current: { memoryCost: number, timeCost: number }): boolean {
  if (hashKindOf(hash) !== 'argon2id') return true
  const phc = phcOf(hash)!
  const { m, t } = phc.params ?? {}
  return Number(phc.version) < 0x13 || Number(m) < current.memoryCost || Number(t) < current.timeCost
}

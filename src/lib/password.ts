import argon2 from 'argon2'
import { validationError, type ErrorDetail } from '../errors.js'
import { NO_BREACH_CHECK, type BreachCheck } from './breached-passwords.js'
import { isCommonPassword } from './common-passwords.js'
import { hashKindOf, isWeakerThan, verifyPasswordHash } from './password-hashes.js'

export { hashKindOf, type HashKind } from './password-hashes.js'

export interface PasswordHasher {
  /** A new hash: always argon2id with the current parameters. */
  hash (plain: string): Promise<string>
  /**
   * Whether the password matches: argon2id, and the legacy kinds of password-hashes.ts (bcrypt,
   * scrypt, argon2i, PBKDF2-SHA256). A malformed or unknown hash is false, after as long as a
   * real verification takes; it never throws.
   */
  verify (hash: string, plain: string): Promise<boolean>
  /** Whether a hash that just verified should be replaced by hash(plain): a legacy kind, or a weaker argon2id. */
  needsRehash (hash: string): boolean
  /** Spends the same time as a verify, for unknown accounts, so timing does not reveal them. */
  verifyDummy (plain: string): Promise<void>
}

/** argon2id with OWASP's parameters (m=19 MiB, t=2, p=1) unless told otherwise. */
export function createPasswordHasher (memoryCost = 19456): PasswordHasher {
  const options = { type: argon2.argon2id, memoryCost, timeCost: 2, parallelism: 1 } as const
  let dummyHash: Promise<string> | undefined
  async function verifyDummy (plain: string) {
    dummyHash ??= argon2.hash('dummy-password-for-timing', options)
    await argon2.verify(await dummyHash, plain).catch(() => false)
  }
  return {
    hash: plain => argon2.hash(plain, options),
    async verify (hash, plain) {
      if (hashKindOf(hash) === undefined) {
        await verifyDummy(plain)
        return false
      }
      return verifyPasswordHash(hash, plain)
    },
    needsRehash: hash => isWeakerThan(hash, options),
    verifyDummy
  }
}

/** The contract's password policy, plus no well-known common password; an empty list means the password is acceptable. */
export function passwordProblems (password: string, email?: string): ErrorDetail[] {
  const problems: string[] = []
  if (password.length < 8 || password.length > 128) problems.push('must be 8 to 128 characters long')
  if (!/[a-z]/.test(password)) problems.push('must contain a lower-case letter')
  if (!/[A-Z]/.test(password)) problems.push('must contain an upper-case letter')
  if (!/[0-9]/.test(password)) problems.push('must contain a digit')
  if (email && password.toLowerCase() === email.toLowerCase()) problems.push('must not be the email address')
  if (isCommonPassword(password)) problems.push('is too common')
  return problems.map(message => ({ field: 'password', message }))
}

/** Throws 400 VALIDATION_ERROR with a detail per broken rule. */
export function assertPasswordPolicy (password: string, email?: string) {
  const problems = passwordProblems(password, email)
  if (problems.length > 0) throw validationError('The password does not meet the policy', problems)
}

/**
 * The one check every new password goes through (register, admin create, reset, change,
 * invitation accept): the policy above, then, when it holds, the breached-password check
 * (PASSWORD_BREACH_CHECK_URL), which only a policy-abiding password is worth a request for.
 */
export type PasswordPolicy = (password: string, email?: string) => Promise<void>

export function createPasswordPolicy (isBreached: BreachCheck = NO_BREACH_CHECK): PasswordPolicy {
  return async (password, email) => {
    assertPasswordPolicy(password, email)
    if (await isBreached(password)) {
      throw validationError('The password does not meet the policy', [{ field: 'password', message: 'appears in a list of breached passwords; choose another' }])
    }
  }
}

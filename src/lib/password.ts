import argon2 from 'argon2'
import { validationError, type ErrorDetail } from '../errors.js'
import { isCommonPassword } from './common-passwords.js'

export interface PasswordHasher {
  hash (plain: string): Promise<string>
  verify (hash: string, plain: string): Promise<boolean>
  /** Spends the same time as a verify, for unknown accounts, so timing does not reveal them. */
  verifyDummy (plain: string): Promise<void>
}

/** argon2id with OWASP's parameters (m=19 MiB, t=2, p=1) unless told otherwise. */
export function createPasswordHasher (memoryCost = 19456): PasswordHasher {
  const options = { type: argon2.argon2id, memoryCost, timeCost: 2, parallelism: 1 } as const
  let dummyHash: Promise<string> | undefined
  return {
    hash: plain => argon2.hash(plain, options),
    verify: async (hash, plain) => {
      try { return await argon2.verify(hash, plain) } catch { return false }
    },
    async verifyDummy (plain) {
      dummyHash ??= argon2.hash('dummy-password-for-timing', options)
      await argon2.verify(await dummyHash, plain).catch(() => false)
    }
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

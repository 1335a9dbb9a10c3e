import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto'
import argon2 from 'argon2'
import bcrypt from 'bcryptjs'
import { serialize } from '@phc/format'

export const PW = 'Legacy-Password-42'

/** Hashes of PW made the way the systems users come from make them. */
export const legacy = {
  bcrypt2a: async (pw: string) => (await bcrypt.hash(pw, 4)).replace(/^\$2b\$/, '$2a$'),
  bcrypt2b: (pw: string) => bcrypt.hash(pw, 4),
  // PHP's crypt() writes $2y$ for the same algorithm.
  bcrypt2y: async (pw: string) => (await bcrypt.hash(pw, 4)).replace(/^\$2b\$/, '$2y$'),
  scrypt: async (pw: string) => {
    const salt = randomBytes(16)
    return serialize({ id: 'scrypt', params: { ln: 10, r: 8, p: 1 }, salt, hash: scryptSync(pw, salt, 32, { N: 1024, r: 8, p: 1 }) })
  },
  argon2i: (pw: string) => argon2.hash(pw, { type: argon2.argon2i, memoryCost: 1024, timeCost: 2, parallelism: 1 }),
  weakArgon2id: (pw: string) => argon2.hash(pw, { type: argon2.argon2id, memoryCost: 512, timeCost: 1, parallelism: 1 }),
  pbkdf2: async (pw: string) => {
    const salt = 'Qc4dFZbS8jcGtTSc'
    return `pbkdf2_sha256$1000$${salt}$${pbkdf2Sync(pw, salt, 1000, 32, 'sha256').toString('base64')}`
  }
}

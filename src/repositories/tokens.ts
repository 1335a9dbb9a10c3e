import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/**
 * Password reset and email verification tokens. Only their SHA-256 is stored; a token is spent by
 * a conditional UPDATE, so it can be used once even when two requests race.
 */

export async function insertPasswordReset (db: Executor, token: { userId: string, tokenHash: string, expiresAt: Date }) {
  await db.insertInto('passwordResetTokens').values(token).execute()
}

/** A reset token `t` that is unspent and unexpired, of a user `u` still there. */
const usableReset = (tokenHash: string) =>
  sql<boolean>`t.token_hash = ${tokenHash} and t.used_at is null and t.expires_at > now() and u.deleted_at is null and u.erased_at is null`

/** The user a usable reset token belongs to (nothing when it is unknown, spent or expired). */
export function findPasswordReset (db: Executor, tokenHash: string) {
  return db.selectFrom('passwordResetTokens as t')
    .innerJoin('users as u', 'u.id', 't.userId')
    .select(['t.userId', 'u.email'])
    .where(usableReset(tokenHash))
    .executeTakeFirst()
}

/** Spends a usable reset token; returns its user, or undefined when it was not usable (or another request won). */
export async function spendPasswordReset (db: Executor, tokenHash: string) {
  const row = await db.updateTable('passwordResetTokens as t')
    .from('users as u')
    .set({ usedAt: sql`now()` as any })
    .whereRef('u.id', '=', 't.userId')
    .where(usableReset(tokenHash))
    .returning('t.userId')
    .executeTakeFirst()
  return row?.userId
}

/** Spends every outstanding reset token of the user: once the password changes, older links are dead. */
export async function spendPasswordResets (db: Executor, userId: string) {
  await db.updateTable('passwordResetTokens').set({ usedAt: sql`now()` as any })
    .where('userId', '=', userId).where('usedAt', 'is', null).execute()
}

export async function insertEmailVerification (db: Executor, token: { userId: string, email: string, tokenHash: string, expiresAt: Date }) {
  await db.insertInto('emailVerificationTokens').values(token).execute()
}

/** A usable verification token, locked until the transaction ends. */
export function lockEmailVerification (db: Executor, tokenHash: string) {
  return db.selectFrom('emailVerificationTokens')
    .select(['id', 'userId', 'email'])
    .where('tokenHash', '=', tokenHash)
    .where('usedAt', 'is', null)
    .where('expiresAt', '>', sql<Date>`now()`)
    .forUpdate()
    .executeTakeFirst()
}

export async function spendEmailVerification (db: Executor, id: string) {
  await db.updateTable('emailVerificationTokens').set({ usedAt: sql`now()` as any }).where('id', '=', id).execute()
}

/** The live user's email and verification state, locked so an email change cannot interleave. */
export function lockUserEmailState (db: Executor, userId: string) {
  return db.selectFrom('users')
    .select(['id', 'email', 'emailVerified', 'status'])
    .where('id', '=', userId)
    .where('deletedAt', 'is', null)
    .where('erasedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst()
}

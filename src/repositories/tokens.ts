import { sql } from 'kysely'
import type { Executor } from './users.js'

/**
 * Password reset and email verification tokens. Only their SHA-256 is stored; a token is spent by
 * a conditional UPDATE, so it can be used once even when two requests race.
 */

/**
 * Queues a password reset for the live, not suspended user with that email, in one statement:
 * the token row and its outbox email (with the id the caller reserved for it) exist together or
 * not at all, and a request for an unknown address costs the same single round trip as one for a
 * known address.
 */
export async function requestPasswordReset (db: Executor, request: { emailId: string, email: string, token: string, tokenHash: string, expiresAt: Date }) {
  await sql`
    with target as (
      select id, email from users
      where lower(email) = ${request.email.toLowerCase()} and deleted_at is null and erased_at is null and status <> 'suspended'
    ), token as (
      insert into password_reset_tokens (user_id, token_hash, expires_at)
      select id, ${request.tokenHash}::text, ${request.expiresAt}::timestamptz from target
      returning user_id
    )
    insert into email_outbox (id, to_address, template, payload)
    select ${request.emailId}::uuid, t.email, 'password_reset', jsonb_build_object('token', ${request.token}::text, 'userId', t.id)
    from target t join token on token.user_id = t.id`.execute(db)
}

/** The user a usable reset token belongs to (nothing when it is unknown, spent or expired). */
export function findPasswordReset (db: Executor, tokenHash: string) {
  return db.selectFrom('passwordResetTokens as t')
    .innerJoin('users as u', 'u.id', 't.userId')
    .select(['t.userId', 'u.email'])
    .where('t.tokenHash', '=', tokenHash)
    .where('t.usedAt', 'is', null)
    .where('t.expiresAt', '>', sql<Date>`now()`)
    .where('u.deletedAt', 'is', null)
    .where('u.erasedAt', 'is', null)
    .executeTakeFirst()
}

/** Spends a usable reset token; returns its user, or undefined when it was not usable (or another request won). */
export async function spendPasswordReset (db: Executor, tokenHash: string) {
  const row = await db.updateTable('passwordResetTokens as t')
    .from('users as u')
    .set({ usedAt: sql`now()` as any })
    .whereRef('u.id', '=', 't.userId')
    .where('t.tokenHash', '=', tokenHash)
    .where('t.usedAt', 'is', null)
    .where('t.expiresAt', '>', sql<Date>`now()`)
    .where('u.deletedAt', 'is', null)
    .where('u.erasedAt', 'is', null)
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

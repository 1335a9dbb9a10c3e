import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/**
 * TOTP authenticators, recovery codes and pending second steps of logins. Every "use once" is a
 * conditional UPDATE ... RETURNING: of two requests racing for the same code, step or token, one
 * gets the row and the other nothing.
 */

/** The user's authenticator, confirmed or not. */
export function findTotp (db: Executor, userId: string) {
  return db.selectFrom('userTotp').select(['secretSealed', 'confirmedAt', 'lastTimeStep']).where('userId', '=', userId).executeTakeFirst()
}

/** Stores a new unconfirmed secret, replacing an unconfirmed one; false when TOTP is already active. */
export async function upsertPendingTotp (db: Executor, userId: string, secretSealed: string) {
  const row = await db.insertInto('userTotp').values({ userId, secretSealed })
    .onConflict(oc => oc.column('userId').doUpdateSet({ secretSealed, createdAt: sql`now()` as any }).where('userTotp.confirmedAt', 'is', null))
    .returning('userId').executeTakeFirst()
  return row !== undefined
}

/** Activates the secret that was checked (not one a concurrent setup put in its place), at its first step. */
export async function confirmTotp (db: Executor, userId: string, secretSealed: string, timeStep: number) {
  const row = await db.updateTable('userTotp').set({ confirmedAt: sql`now()` as any, lastTimeStep: timeStep })
    .where('userId', '=', userId).where('secretSealed', '=', secretSealed).where('confirmedAt', 'is', null)
    .returning('userId').executeTakeFirst()
  return row !== undefined
}

/** Accepts a code's time step once: true only when it is newer than every step accepted before. */
export async function acceptTimeStep (db: Executor, userId: string, timeStep: number) {
  const row = await db.updateTable('userTotp').set({ lastTimeStep: timeStep })
    .where('userId', '=', userId).where('confirmedAt', 'is not', null)
    .where(sql<boolean>`(last_time_step is null or last_time_step < ${timeStep})`)
    .returning('userId').executeTakeFirst()
  return row !== undefined
}

export async function deleteTotp (db: Executor, userId: string) {
  const result = await db.deleteFrom('userTotp').where('userId', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** Replaces every recovery code of the user by a new set (hashes only). */
export async function replaceRecoveryCodes (db: Executor, userId: string, codeHashes: string[]) {
  await deleteRecoveryCodes(db, userId)
  await db.insertInto('userRecoveryCodes').values(codeHashes.map(codeHash => ({ userId, codeHash }))).execute()
}

export async function deleteRecoveryCodes (db: Executor, userId: string) {
  const result = await db.deleteFrom('userRecoveryCodes').where('userId', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Spends one unused recovery code; false when it is unknown, spent, or another request spent it first. */
export async function spendRecoveryCode (db: Executor, userId: string, codeHash: string) {
  const row = await db.updateTable('userRecoveryCodes').set({ usedAt: sql`now()` as any })
    .where('userId', '=', userId).where('codeHash', '=', codeHash).where('usedAt', 'is', null)
    .returning('id').executeTakeFirst()
  return row !== undefined
}

/** A user's second factors, as columns of a select from `users as u` (also the login's account lookup). */
export const MFA_STATE_COLUMNS = [
  sql<boolean>`exists(select 1 from user_totp t where t.user_id = u.id and t.confirmed_at is not null)`.as('totp'),
  sql<number>`(select count(*)::int from user_recovery_codes c where c.user_id = u.id and c.used_at is null)`.as('recoveryCodesLeft'),
  sql<boolean>`exists(select 1 from user_passkeys p where p.user_id = u.id)`.as('passkeys')
] as const

/** What the user has enrolled: whether TOTP is active and how many recovery codes are left. */
export async function findMfaState (db: Executor, userId: string) {
  const row = await db.selectFrom('users as u')
    .select(MFA_STATE_COLUMNS)
    .where('u.id', '=', userId)
    .executeTakeFirst()
  return row ?? { totp: false, recoveryCodesLeft: 0, passkeys: false }
}

export async function insertMfaChallenge (db: Executor, challenge: { userId: string, tokenHash: string, amr: string[], method: string, expiresAt: Date }) {
  await db.insertInto('mfaChallenges').values(challenge).execute()
}

/** A pending second step that is neither spent nor expired, of a user that may log in, with its email (the lockout's key). */
export function findMfaChallenge (db: Executor, tokenHash: string) {
  return db.selectFrom('mfaChallenges as c')
    .innerJoin('users as u', 'u.id', 'c.userId')
    .select(['c.userId', 'c.amr', 'c.method', 'u.email'])
    .where('c.tokenHash', '=', tokenHash).where('c.spentAt', 'is', null).where('c.expiresAt', '>', sql<Date>`now()`)
    // An account suspended or deleted since its password was checked cannot finish logging in.
    .where('u.deletedAt', 'is', null).where('u.erasedAt', 'is', null).where('u.status', '<>', 'suspended')
    .executeTakeFirst()
}

/** Spends a pending second step; undefined when it was not usable (or a concurrent request won). */
export function spendMfaChallenge (db: Executor, tokenHash: string) {
  return db.updateTable('mfaChallenges').set({ spentAt: sql`now()` as any })
    .where('tokenHash', '=', tokenHash).where('spentAt', 'is', null).where('expiresAt', '>', sql<Date>`now()`)
    .returning(['userId', 'amr']).executeTakeFirst()
}

/** Ends every pending second step of the user (its factors were reset); retention drops everyone's old ones. */
export async function deleteMfaChallenges (db: Executor, userId: string) {
  await db.deleteFrom('mfaChallenges').where('userId', '=', userId).execute()
}

/** Everything MFA of a user, for erasure. */
export async function deleteMfaRecords (db: Executor, userId: string) {
  await deleteTotp(db, userId)
  await deleteRecoveryCodes(db, userId)
  await db.deleteFrom('mfaChallenges').where('userId', '=', userId).execute()
}

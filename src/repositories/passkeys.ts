import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/** What a passkey's owner may see of it: never the key, the credential id or the counter. */
const PUBLIC_COLUMNS = ['id', 'name', 'createdAt', 'lastUsedAt'] as const

export type ChallengePurpose = 'register' | 'login' | 'mfa'

export interface NewPasskey {
  userId: string
  credentialId: string
  publicKey: Buffer
  signCount: number
  transports: string[]
  name: string
  deviceType: string
  backedUp: boolean
}

export async function insertPasskey (db: Executor, passkey: NewPasskey) {
  return db.insertInto('userPasskeys').values(passkey).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow()
}

export function listPasskeys (db: Executor, userId: string) {
  return db.selectFrom('userPasskeys').select(PUBLIC_COLUMNS)
    .where('userId', '=', userId).orderBy('createdAt').orderBy('id').limit(100).execute()
}

/** What a GDPR export gives of each passkey: the public columns and its transports, never key material. */
export function listPasskeysForExport (db: Executor, userId: string) {
  return db.selectFrom('userPasskeys').select([...PUBLIC_COLUMNS, 'transports'])
    .where('userId', '=', userId).orderBy('createdAt').orderBy('id').limit(100).execute()
}

/** The credential ids (and transports) of a user's passkeys, for excludeCredentials and allowCredentials. */
export function listCredentialDescriptors (db: Executor, userId: string) {
  return db.selectFrom('userPasskeys').select(['credentialId', 'transports'])
    .where('userId', '=', userId).orderBy('createdAt').orderBy('id').limit(100).execute()
}

/** A passkey by its credential id, with the key to verify against, if its user still exists. */
export function findCredential (db: Executor, credentialId: string) {
  return db.selectFrom('userPasskeys as p')
    .innerJoin('users as u', 'u.id', 'p.userId')
    .select(['p.id', 'p.userId', 'p.publicKey', 'p.signCount', 'p.transports', 'u.status'])
    .where('p.credentialId', '=', credentialId)
    .where('u.deletedAt', 'is', null)
    .where('u.erasedAt', 'is', null)
    .executeTakeFirst()
}

/**
 * Records a use with the new signature counter, if and only if the counter moved on from the one
 * stored (both zero: an authenticator that keeps no counter). Conditional, so of two assertions
 * racing with the same counter only one is taken. False when it did not move on: a clone.
 */
export async function recordUse (db: Executor, id: string, signCount: number, backedUp: boolean) {
  const result = await db.updateTable('userPasskeys')
    .set({ signCount, backedUp, lastUsedAt: sql`now()` as any })
    .where('id', '=', id)
    .where(sql<boolean>`(sign_count < ${signCount} or (sign_count = 0 and ${signCount}::bigint = 0))`)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/** Deletes one of the user's passkeys; false when there is no such passkey of that user. */
export async function deletePasskey (db: Executor, userId: string, id: string) {
  const result = await db.deleteFrom('userPasskeys').where('id', '=', id).where('userId', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** Deletes every passkey of the user and its outstanding challenges (an erasure, an MFA reset); returns how many passkeys. */
export async function deleteUserPasskeys (db: Executor, userId: string) {
  await db.deleteFrom('webauthnChallenges').where('userId', '=', userId).execute()
  const result = await db.deleteFrom('userPasskeys').where('userId', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows)
}

export async function insertChallenge (db: Executor, challenge: { purpose: ChallengePurpose, userId: string | null, challenge: string, expiresAt: Date }) {
  const row = await db.insertInto('webauthnChallenges').values(challenge).returning('id').executeTakeFirstOrThrow()
  return row.id
}

/**
 * Spends a live challenge, found by its id or by (purpose, user, challenge value), in one
 * conditional DELETE: of two requests presenting it at once exactly one gets the row back.
 */
export async function spendChallenge (db: Executor, by: { purpose: ChallengePurpose, id?: string, userId?: string, challenge?: string }) {
  let query = db.deleteFrom('webauthnChallenges')
    .where('purpose', '=', by.purpose)
    .where('expiresAt', '>', sql<Date>`now()`)
  if (by.id !== undefined) query = query.where('id', '=', by.id)
  if (by.userId !== undefined) query = query.where('userId', '=', by.userId)
  if (by.challenge !== undefined) query = query.where('challenge', '=', by.challenge)
  return query.returning(['userId', 'challenge']).executeTakeFirst()
}

/** The live account of an email (userId) with its passkeys' descriptors: one row with null ones when it has none. */
export function findDescriptorsByEmail (db: Executor, email: string) {
  return db.selectFrom('users as u')
    .leftJoin('userPasskeys as p', 'p.userId', 'u.id')
    .select(['u.id as userId', 'p.credentialId', 'p.transports'])
    .where(sql`lower(u.email)`, '=', email)
    .where('u.deletedAt', 'is', null)
    .orderBy('p.createdAt').orderBy('p.id')
    .limit(100)
    .execute()
}

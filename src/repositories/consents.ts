import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/**
 * Consents: one row per change, never updated (the table's trigger refuses it). A user's current
 * consent to a purpose is its latest row for that purpose.
 */

export interface ConsentChangeRow { purpose: string, granted: boolean, version: string }

/** Records changes of one user's consents; the rows as written, in the order given. */
export function insertConsents (db: Executor, userId: string, changes: ConsentChangeRow[]) {
  return db.insertInto('userConsents').values(changes.map(change => ({ userId, ...change })))
    .returning(['purpose', 'granted', 'version', 'createdAt']).execute()
}

/** The latest change per purpose, by purpose name. */
export function currentConsents (db: Executor, userId: string) {
  return db.selectFrom('userConsents')
    .distinctOn('purpose')
    .select(['purpose', 'granted', 'version', 'createdAt'])
    .where('userId', '=', userId)
    .orderBy('purpose').orderBy('seq', 'desc')
    .execute()
}

/** Every change, oldest first (for a GDPR export). */
export function consentHistory (db: Executor, userId: string, limit: number) {
  return db.selectFrom('userConsents')
    .select(['purpose', 'granted', 'version', 'createdAt'])
    .where('userId', '=', userId)
    .orderBy('seq').limit(limit)
    .execute()
}

/**
 * Erasure deletes the user's consents: the audit trail keeps that changes happened, without PII.
 * The table refuses deletes except in a transaction that declares an erasure (app.consent_erase).
 */
export async function deleteConsents (trx: Executor, userId: string) {
  await sql`select set_config('app.consent_erase', 'on', true)`.execute(trx)
  await trx.deleteFrom('userConsents').where('userId', '=', userId).execute()
  await sql`select set_config('app.consent_erase', 'off', true)`.execute(trx)
}

/** Whether the user exists and is neither deleted nor erased; with lock, it stays so until the transaction ends (FOR SHARE). */
export async function isLiveUser (db: Executor, userId: string, lock = false) {
  const query = db.selectFrom('users').select('id').where('id', '=', userId).where('deletedAt', 'is', null).where('erasedAt', 'is', null)
  return (await (lock ? query.forShare() : query).executeTakeFirst()) !== undefined
}

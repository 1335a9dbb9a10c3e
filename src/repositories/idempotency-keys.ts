import { sql } from 'kysely'
import type { Executor } from '../db/types.js'
import { piiSealer } from './pii.js'

/**
 * Idempotency keys (db/migrations/010_idempotency_keys.up.sql): a request claims its key with one
 * INSERT ... ON CONFLICT, so of two requests racing on a key exactly one holds it; the holder then
 * stores its answer (done) or releases the key. Times are the database's, the same for every instance.
 */

export interface StoredAnswer { statusCode: number, body: string | null, headers: Record<string, string> }

export interface KeyClaim { scope: string, key: string, requestHash: string, ttlSec: number, leaseSec: number }

const secondsFromNow = (seconds: number) => sql<Date>`now() + ${seconds} * interval '1 second'`

/**
 * Claims the key: a new row, or takes over the row of a key that has expired or of a running
 * claim whose holder is gone (its lease ran out). Returns the claim id, or undefined when the key
 * is held: by a request still running, or by an answer kept for replay.
 */
export async function claimIdempotencyKey (db: Executor, claim: KeyClaim) {
  const fresh = {
    requestHash: claim.requestHash,
    lockedUntil: secondsFromNow(claim.leaseSec),
    expiresAt: secondsFromNow(claim.ttlSec)
  }
  const row = await db.insertInto('idempotencyKeys')
    .values({ scope: claim.scope, key: claim.key, ...fresh })
    .onConflict(oc => oc.columns(['scope', 'key'])
      .doUpdateSet({
        ...fresh,
        claimId: sql`gen_random_uuid()`,
        state: 'running',
        statusCode: null,
        body: null,
        headers: '{}',
        createdAt: sql`now()`
      })
      .where(eb => eb.or([
        eb('idempotencyKeys.expiresAt', '<=', sql<Date>`now()`),
        eb.and([eb('idempotencyKeys.state', '=', 'running'), eb('idempotencyKeys.lockedUntil', '<=', sql<Date>`now()`)])
      ])))
    .returning('claimId')
    .executeTakeFirst()
  return row?.claimId
}

/** The unexpired row of a key, as a request that could not claim it sees it. */
export function findIdempotencyKey (db: Executor, scope: string, key: string) {
  return db.selectFrom('idempotencyKeys')
    .select(['requestHash', 'state', 'statusCode', 'body', 'headers'])
    .where('scope', '=', scope)
    .where('key', '=', key)
    .where('expiresAt', '>', sql<Date>`now()`)
    .executeTakeFirst()
}

/** Keeps the answer of the claim's request; false when the claim was lost meanwhile (its lease ran out and another took it). */
export async function storeIdempotentAnswer (db: Executor, scope: string, key: string, claimId: string, answer: StoredAnswer) {
  const result = await db.updateTable('idempotencyKeys')
    // The answer may be a login's, with the user's profile: sealed like it (opened by the row plugin).
    .set({ state: 'done', statusCode: answer.statusCode, body: piiSealer(db)?.text('body', answer.body) ?? answer.body, headers: JSON.stringify(answer.headers) })
    .where('scope', '=', scope)
    .where('key', '=', key)
    .where('claimId', '=', claimId)
    .where('state', '=', 'running')
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Gives the key up (its request failed with a 5xx), so a retry runs again. */
export async function releaseIdempotencyKey (db: Executor, scope: string, key: string, claimId: string) {
  await db.deleteFrom('idempotencyKeys')
    .where('scope', '=', scope)
    .where('key', '=', key)
    .where('claimId', '=', claimId)
    .where('state', '=', 'running')
    .execute()
}

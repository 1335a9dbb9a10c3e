import { createHash } from 'node:crypto'
import { configure } from 'safe-stable-stringify'
import type { Executor } from '../db/types.js'
import { idempotencyInProgress, idempotencyKeyReused } from '../errors.js'
import {
  claimIdempotencyKey, findIdempotencyKey, releaseIdempotencyKey, storeIdempotentAnswer,
  type StoredAnswer
} from '../repositories/idempotency-keys.js'

export type { StoredAnswer }

/** The contract keeps a key for 24 h. */
export const IDEMPOTENCY_TTL_SEC = 24 * 60 * 60
/**
 * A running claim whose instance died is given up after this long: twice the server's request
 * timeout (30 s, src/server.ts), so no live request loses its claim.
 */
export const IDEMPOTENCY_LEASE_SEC = 60

/** Key order in a JSON body does not make another request: a retry may serialize the same object differently. */
const canonicalJson = configure({ deterministic: true, circularValue: TypeError })

/** What the request with a key may do: run (holding the claim), or answer with the stored answer of the same request. */
export type IdempotencyOutcome = { claimId: string, replay?: undefined } | { claimId?: undefined, replay: StoredAnswer }

export interface IdempotencyService {
  /** The hash a key is bound to: method, path (with its query) and body. */
  requestHash (method: string, url: string, body: unknown): string
  /** Claims the key for this request, or finds the stored answer; 422 for a different request, 409 while the first still runs. */
  begin (scope: string, key: string, requestHash: string): Promise<IdempotencyOutcome>
  /** Keeps the answer for replays (the caller keeps 5xx out: release); false when the claim had been lost (its lease ran out). */
  complete (scope: string, key: string, claimId: string, answer: StoredAnswer): Promise<boolean>
  /** Gives the key up: a retry with it runs again. */
  release (scope: string, key: string, claimId: string): Promise<void>
}

/**
 * Idempotency-Key (the contract's "Conventions, added"): stored in PostgreSQL, so every instance
 * shares the keys. Expired keys are purged by retention (services/retention.ts); until then a
 * claim treats them as absent.
 */
export function createIdempotencyService ({ db }: { db: Executor }): IdempotencyService {
  return {
    requestHash (method, url, body) {
      return createHash('sha256').update(`${method} ${url}\n${canonicalJson(body) ?? ''}`).digest('hex')
    },

    async begin (scope, key, requestHash) {
      // A key released (5xx) or expired between the claim and the look-up is free again: claim once more.
      for (let attempt = 0; attempt < 3; attempt++) {
        const claimId = await claimIdempotencyKey(db, { scope, key, requestHash, ttlSec: IDEMPOTENCY_TTL_SEC, leaseSec: IDEMPOTENCY_LEASE_SEC })
        if (claimId) return { claimId }
        const row = await findIdempotencyKey(db, scope, key)
        if (!row) continue
        if (row.requestHash !== requestHash) throw idempotencyKeyReused()
        if (row.state === 'running' || row.statusCode === null) throw idempotencyInProgress()
        return { replay: { statusCode: row.statusCode, body: row.body, headers: row.headers as Record<string, string> } }
      }
      throw idempotencyInProgress()
    },

    complete: (scope, key, claimId, answer) => storeIdempotentAnswer(db, scope, key, claimId, answer),

    release: (scope, key, claimId) => releaseIdempotencyKey(db, scope, key, claimId)
  }
}

import type { Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import type { Database } from '../db/types.js'
import { notFound, validationError } from '../errors.js'
import { insertAudit } from '../repositories/audit.js'
import { currentConsents, insertConsents, isLiveUser, type ConsentChangeRow } from '../repositories/consents.js'
import type { Consent, ConsentInput } from '../../schemas/consent.js'
import type { RequestContext } from './context.js'

const toConsent = (row: ConsentChangeRow & { createdAt: Date }): Consent =>
  ({ purpose: row.purpose, granted: row.granted, version: row.version, updatedAt: row.createdAt.toISOString() })

/**
 * Consents to the purposes of CONSENT_PURPOSES: every change is a new row (the history the export
 * gives) and a user.consent_changed audit row in the same transaction.
 */
export function createConsentsService ({ db, config }: { db: DB, config: Config }) {
  const purposes = new Set(config.consentPurposes)

  /** An unknown purpose is 400, whether it is a path parameter or a key of a registration's consents. */
  function assertKnown (names: string[], field: (name: string) => string) {
    const unknown = names.filter(name => !purposes.has(name))
    if (unknown.length > 0) {
      throw validationError('Unknown consent purpose', unknown.map(name => ({ field: field(name), message: `unknown purpose "${name}"; known: ${config.consentPurposes.join(', ')}` })))
    }
  }

  async function record (trx: Transaction<Database>, ctx: RequestContext, userId: string, changes: ConsentChangeRow[]) {
    const rows = await insertConsents(trx, userId, changes)
    for (const change of changes) {
      await insertAudit(trx, ctx, { action: 'user.consent_changed', userId, changes: { purpose: change.purpose, granted: change.granted, version: change.version } })
    }
    return rows.map(toConsent)
  }

  return {
    /** Checks a registration's consents before anything is written (or hashed). */
    assertRegistrable (consents: Record<string, string> | undefined) {
      if (consents) assertKnown(Object.keys(consents), name => `consents.${name}`)
    },

    /** A registration's consents, each granted, in the registration's transaction (ctx: the new user acting). */
    async grantIn (trx: Transaction<Database>, ctx: RequestContext, userId: string, consents: Record<string, string>) {
      const changes = Object.entries(consents).map(([purpose, version]) => ({ purpose, granted: true, version }))
      if (changes.length > 0) await record(trx, ctx, userId, changes)
    },

    /** The current state of each configured purpose that has one (a purpose never decided is not listed). */
    async list (userId: string): Promise<Consent[]> {
      if (!await isLiveUser(db, userId)) throw notFound('User')
      const rows = await currentConsents(db, userId)
      return rows.filter(row => purposes.has(row.purpose)).map(toConsent)
    },

    /** Records a change; the same state as the current one records nothing and answers it. */
    async set (ctx: RequestContext, userId: string, purpose: string, input: ConsentInput): Promise<Consent> {
      assertKnown([purpose], () => 'purpose')
      return db.transaction().execute(async trx => {
        // Held until commit: an erasure (FOR UPDATE) cannot run between the check and the write.
        if (!await isLiveUser(trx, userId, true)) throw notFound('User')
        const current = (await currentConsents(trx, userId)).find(row => row.purpose === purpose)
        if (current && current.granted === input.granted && current.version === input.version) return toConsent(current)
        const [written] = await record(trx, ctx, userId, [{ purpose, granted: input.granted, version: input.version }])
        return written
      })
    }
  }
}

export type ConsentsService = ReturnType<typeof createConsentsService>

import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

export type EmailTemplate = 'verify_email' | 'password_reset'

export async function enqueueEmail (db: Executor, toAddress: string, template: EmailTemplate, payload: Record<string, unknown>) {
  await db.insertInto('emailOutbox').values({ toAddress, template, payload: JSON.stringify(payload) }).execute()
}

/**
 * Emails due for delivery, oldest first: unsent, under maxAttempts, and past their backoff
 * (attempt n is due retryBaseSec * 2^n seconds after the row was created). With lock, the rows
 * are locked FOR UPDATE SKIP LOCKED, so concurrent workers never take the same email.
 */
export function findDueEmails (db: Executor, options: { limit: number, maxAttempts: number, retryBaseSec: number, lock: boolean }) {
  let query = db.selectFrom('emailOutbox')
    .select(['id', 'toAddress', 'template', 'payload', 'attempts'])
    .where('sentAt', 'is', null)
    .where('attempts', '<', options.maxAttempts)
    .where(eb => eb.or([
      eb('attempts', '=', 0),
      eb(sql<Date>`created_at + make_interval(secs => ${options.retryBaseSec}::float8 * power(2, attempts))`, '<=', sql<Date>`now()`)
    ]))
    .orderBy('createdAt')
    .limit(options.limit)
  if (options.lock) query = query.forUpdate().skipLocked()
  return query.execute()
}

export async function markEmailSent (db: Executor, id: string) {
  await db.updateTable('emailOutbox')
    .set(eb => ({ sentAt: sql`now()` as any, attempts: eb('attempts', '+', 1), lastError: null }))
    .where('id', '=', id).execute()
}

export async function markEmailFailed (db: Executor, id: string, error: string) {
  await db.updateTable('emailOutbox')
    .set(eb => ({ attempts: eb('attempts', '+', 1), lastError: error.slice(0, 500) }))
    .where('id', '=', id).execute()
}

import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

export type EmailTemplate = 'verify_email' | 'password_reset' | 'invitation'

export async function insertEmail (db: Executor, email: { id: string, toAddress: string, template: EmailTemplate, payload: Record<string, unknown> }) {
  await db.insertInto('emailOutbox').values({ ...email, payload: JSON.stringify(email.payload) }).execute()
}

/** The email with that id, unless it was sent already (or erased). */
export function findUnsentEmail (db: Executor, id: string) {
  return db.selectFrom('emailOutbox')
    .select(['id', 'toAddress', 'template', 'payload', 'attempts'])
    .where('id', '=', id)
    .where('sentAt', 'is', null)
    .executeTakeFirst()
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

/** The newest emails to an address, sent or not (the test endpoints read them). */
export function listEmailsTo (db: Executor, toAddress: string, limit: number) {
  return db.selectFrom('emailOutbox')
    .select(['id', 'toAddress', 'template', 'payload', 'createdAt', 'sentAt'])
    .where(sql<string>`lower(to_address)`, '=', toAddress.toLowerCase())
    .orderBy('createdAt', 'desc').orderBy('id', 'desc')
    .limit(limit)
    .execute()
}

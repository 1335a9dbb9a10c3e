import type { Executor } from './users.js'

export type EmailTemplate = 'verify_email' | 'password_reset'

export async function enqueueEmail (db: Executor, toAddress: string, template: EmailTemplate, payload: Record<string, unknown>) {
  await db.insertInto('emailOutbox').values({ toAddress, template, payload: JSON.stringify(payload) }).execute()
}

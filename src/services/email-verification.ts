import { hashToken, randomToken } from '../lib/tokens.js'
import { insertEmailVerification } from '../repositories/tokens.js'
import type { Executor } from '../repositories/users.js'
import type { EmailOutbox } from './email.js'

export const VERIFY_EMAIL_TTL_MS = 24 * 3600_000

/** A verification token for the address, and its email in the outbox, in the caller's transaction. */
export async function queueEmailVerification (ex: Executor, emails: EmailOutbox, userId: string, email: string) {
  const token = randomToken()
  await insertEmailVerification(ex, { userId, email, tokenHash: hashToken(token), expiresAt: new Date(Date.now() + VERIFY_EMAIL_TTL_MS) })
  await emails.queue(ex, email, 'verify_email', { token, userId })
}

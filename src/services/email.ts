import { randomUUID } from 'node:crypto'
import type { Transporter } from 'nodemailer'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { JobQueue } from '../jobs/job-queue.js'
import type { Executor } from '../repositories/users.js'
import { findUnsentEmail, insertEmail, listEmailsTo, markEmailFailed, markEmailSent, type EmailTemplate } from '../repositories/outbox.js'
import type { CapturedEmail } from '../../schemas/test.js'

export const SEND_EMAIL_JOB = 'email.send'
/** At most 10 tries; the n-th retry about 30 s * 2^n after the last (pg-boss adds jitter). */
const RETRY = { retryLimit: 9, retryDelaySec: 30, retryBackoff: true }

interface OutboxEmail { id: string, toAddress: string, template: EmailTemplate, payload: Record<string, unknown> }
interface Mailer { send (email: OutboxEmail): Promise<void>, close (): void }

export interface EmailOutbox {
  /**
   * Writes the email to the outbox and its delivery job, in the caller's transaction; resolves to
   * the outbox row's id. A job whose row was erased since completes without sending anything.
   */
  queue (ex: Executor, toAddress: string, template: EmailTemplate, payload: Record<string, unknown>): Promise<string>
}

export interface EmailDelivery extends EmailOutbox {
  /** Delivers every email that is due now; resolves to the number sent. */
  deliverPending (): Promise<number>
  /** The newest emails to an address as they read, tokens included: for test pipelines only. */
  listTo (toAddress: string, limit: number): Promise<CapturedEmail[]>
  close (): void
}

function render (email: OutboxEmail, appUrl: string) {
  const token = email.payload?.token
  if (typeof token !== 'string' || token === '') throw new Error(`the ${email.template} email has no token`)
  const link = (path: string) => `${appUrl}${path}?token=${encodeURIComponent(token)}`
  switch (email.template) {
    case 'verify_email':
      return { subject: 'Verify your email address', text: `Open this link to verify your email address:\n\n${link('/verify-email')}\n\nThe link expires in 24 hours.` }
    case 'password_reset':
      return { subject: 'Reset your password', text: `Open this link to choose a new password:\n\n${link('/reset-password')}\n\nThe link expires in 1 hour. If you did not ask for it, ignore this email.` }
    case 'invitation':
      return { subject: 'You are invited', text: `You have been invited to create an account. Open this link to choose your password:\n\n${link('/accept-invitation')}\n\nThe link expires in 7 days.` }
    default:
      throw new Error(`unknown email template ${String(email.template)}`)
  }
}

function createMailer (config: Config, log: FastifyBaseLogger): Mailer {
  if (config.emailTransport === 'smtp') {
    // nodemailer (about 15 MiB resident) is loaded with the first email, not by every instance at start.
    let transport: Promise<Transporter> | undefined
    const transportOf = () => (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport({
      url: config.smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000
    })))
    return {
      async send (email) {
        const { subject, text } = render(email, config.appUrl)
        await (await transportOf()).sendMail({ from: config.emailFrom, to: email.toAddress, subject, text })
      },
      close: () => { transport?.then(t => t.close(), () => {}) }
    }
  }
  // Test transport: the outbox row is the kept copy (listTo reads it).
  if (config.emailTransport === 'capture') return { async send (email) { render(email, config.appUrl) }, close () {} }
  // Development transport: says that an email went out, never what it carries (the token is a credential).
  return {
    async send (email) {
      render(email, config.appUrl)
      log.info({ emailId: email.id, template: email.template, to: email.toAddress }, 'email delivered (log transport)')
    },
    close () {}
  }
}

/**
 * Email delivery as a job: each outbox row has one `email.send` job, added in the same
 * transaction. The job sends the row with the configured transport and records sent_at, or
 * attempts and last_error and fails, to be retried with backoff. A row already sent is not sent
 * again; a crash between sending and recording sends it again (at least once, as any outbox).
 */
export async function createEmailDelivery ({ config, log, jobs, db }: { config: Config, log: FastifyBaseLogger, jobs: JobQueue, db: Executor }): Promise<EmailDelivery> {
  const mailer = createMailer(config, log)

  await jobs.register<{ emailId: string }>(SEND_EMAIL_JOB, {
    ...RETRY,
    pollIntervalMs: config.emailPollIntervalMs,
    async handler ({ data, attempt }) {
      const email = await findUnsentEmail(db, data.emailId)
      if (!email) return
      try {
        await mailer.send(email)
      } catch (err) {
        const message = (err as Error).message ?? String(err)
        log.warn({ emailId: email.id, template: email.template, attempt, error: message }, 'email delivery failed')
        await markEmailFailed(db, email.id, message)
        throw err
      }
      await markEmailSent(db, email.id)
    }
  })

  return {
    async queue (ex, toAddress, template, payload) {
      const id = randomUUID()
      await insertEmail(ex, { id, toAddress, template, payload })
      await jobs.enqueue(ex, SEND_EMAIL_JOB, { emailId: id })
      return id
    },
    deliverPending: () => jobs.runDue(SEND_EMAIL_JOB),
    async listTo (toAddress, limit) {
      const rows = await listEmailsTo(db, toAddress, limit)
      return rows.map(row => {
        const payload = row.payload as Record<string, unknown>
        const { subject, text } = render({ ...row, payload }, config.appUrl)
        return { id: row.id, to: row.toAddress, template: row.template, subject, text, payload, createdAt: row.createdAt.toISOString(), sentAt: row.sentAt?.toISOString() ?? null }
      })
    },
    close: () => mailer.close()
  }
}

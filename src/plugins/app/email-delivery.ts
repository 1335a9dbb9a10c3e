import fp from 'fastify-plugin'
import nodemailer from 'nodemailer'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../../config.js'
import type { Executor } from '../../repositories/users.js'
import { findDueEmails, markEmailFailed, markEmailSent, type EmailTemplate } from '../../repositories/outbox.js'

declare module 'fastify' {
  interface FastifyInstance {
    emailDelivery: {
      /** Delivers every email that is due now; resolves to the number sent. Runs one at a time. */
      deliverPending (): Promise<number>
    }
  }
}

const BATCH_SIZE = 20
const MAX_BATCHES_PER_RUN = 10
const MAX_ATTEMPTS = 10
const RETRY_BASE_SEC = 30

interface OutboxEmail { id: string, toAddress: string, template: EmailTemplate, payload: Record<string, unknown> }
interface Mailer { send (email: OutboxEmail): Promise<void>, close (): void }

function render (email: OutboxEmail, appUrl: string) {
  const token = email.payload?.token
  if (typeof token !== 'string' || token === '') throw new Error(`the ${email.template} email has no token`)
  const link = (path: string) => `${appUrl}${path}?token=${encodeURIComponent(token)}`
  switch (email.template) {
    case 'verify_email':
      return { subject: 'Verify your email address', text: `Open this link to verify your email address:\n\n${link('/verify-email')}\n\nThe link expires in 24 hours.` }
    case 'password_reset':
      return { subject: 'Reset your password', text: `Open this link to choose a new password:\n\n${link('/reset-password')}\n\nThe link expires in 1 hour. If you did not ask for it, ignore this email.` }
    default:
      throw new Error(`unknown email template ${String(email.template)}`)
  }
}

function createMailer (config: Config, log: FastifyBaseLogger): Mailer {
  if (config.emailTransport === 'smtp') {
    const transport = nodemailer.createTransport({
      url: config.smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000
    })
    return {
      async send (email) {
        const { subject, text } = render(email, config.appUrl)
        await transport.sendMail({ from: config.emailFrom, to: email.toAddress, subject, text })
      },
      close: () => transport.close()
    }
  }
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
 * Delivers the email outbox: polls for unsent rows, sends each with the configured transport,
 * and records sent_at, or attempts and last_error (retried with exponential backoff, up to
 * MAX_ATTEMPTS). On PostgreSQL a batch is locked FOR UPDATE SKIP LOCKED for the time it is sent,
 * so several instances never send the same email; a crash between sending and committing sends
 * it again (at least once). The embedded database has one process, so it needs no lock and
 * keeps no transaction open while sending.
 */
export default fp(async function emailDelivery (fastify) {
  const { config, database, log } = fastify
  const mailer = createMailer(config, log)

  async function deliverBatch (ex: Executor) {
    const due = await findDueEmails(ex, { limit: BATCH_SIZE, maxAttempts: MAX_ATTEMPTS, retryBaseSec: RETRY_BASE_SEC, lock: database.kind === 'postgres' })
    let sent = 0
    for (const email of due) {
      try {
        await mailer.send(email)
      } catch (err) {
        const message = (err as Error).message ?? String(err)
        log.warn({ emailId: email.id, template: email.template, attempt: email.attempts + 1, error: message }, 'email delivery failed')
        await markEmailFailed(ex, email.id, message)
        continue
      }
      await markEmailSent(ex, email.id)
      sent++
    }
    return { sent, full: due.length === BATCH_SIZE }
  }

  async function run () {
    let total = 0
    for (let i = 0; i < MAX_BATCHES_PER_RUN; i++) {
      const { sent, full } = database.kind === 'postgres'
        ? await database.db.transaction().execute(deliverBatch)
        : await deliverBatch(database.db)
      total += sent
      if (!full) break
    }
    return total
  }

  let running: Promise<number> | null = null
  function deliverPending () {
    running ??= run().finally(() => { running = null })
    return running
  }
  fastify.decorate('emailDelivery', { deliverPending })

  let timer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    if (config.emailPollIntervalMs <= 0) return
    timer = setInterval(() => {
      deliverPending().catch(err => log.error({ err }, 'email outbox run failed'))
    }, config.emailPollIntervalMs)
    timer.unref()
  })
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    await running?.catch(() => {})
    mailer.close()
  })
}, { name: 'email-delivery', dependencies: ['config', 'database'] })

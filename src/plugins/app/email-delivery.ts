import fp from 'fastify-plugin'
import { createEmailDelivery, type EmailDelivery, type EmailOutbox } from '../../services/email.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Queues emails in the caller's transaction (services use it). */
    emailOutbox: EmailOutbox
    emailDelivery: Pick<EmailDelivery, 'deliverPending' | 'listTo'>
  }
}

/** Registers email delivery (services/email.ts) as a job on the job queue; EMAIL_POLL_INTERVAL 0 leaves delivery to deliverPending. */
export default fp(async function emailDelivery (fastify) {
  const delivery = await createEmailDelivery({ config: fastify.config, log: fastify.log, jobs: fastify.jobs, db: fastify.database.db })
  fastify.decorate('emailOutbox', { queue: delivery.queue })
  fastify.decorate('emailDelivery', { deliverPending: delivery.deliverPending, listTo: delivery.listTo })
  // onClose runs in reverse order, so this runs before the queue's own: stop the jobs (a running
  // delivery finishes), then close the transport.
  fastify.addHook('onClose', async () => {
    try { await fastify.jobs.stop() } finally { delivery.close() }
  })
}, { name: 'email-delivery', dependencies: ['config', 'database', 'jobs'] })

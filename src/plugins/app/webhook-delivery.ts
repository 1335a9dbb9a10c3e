import fp from 'fastify-plugin'
import { createWebhooksService, type WebhooksService } from '../../services/webhooks.js'

declare module 'fastify' {
  interface FastifyInstance { webhooksService: WebhooksService }
}

/**
 * Webhook delivery (services/webhooks.ts) on the job queue: a sweep queues the due deliveries
 * when the database says an event made some (NOTIFY webhook_deliveries), and every
 * WEBHOOK_POLL_INTERVAL for retries and anything a lost notification missed; 0 leaves it all to
 * deliverPending. Finished deliveries are purged by retention (services/retention.ts).
 */
export default fp(async function webhookDelivery (fastify) {
  const { config, log } = fastify
  const service = await createWebhooksService({ db: fastify.database.db, config, jobs: fastify.jobs, log })
  fastify.decorate('webhooksService', service)
  if (config.webhookPollIntervalMs <= 0) return

  let sweeping: Promise<unknown> | undefined
  let again = false
  const sweep = () => {
    if (sweeping) { again = true; return }
    sweeping = service.deliverPending(null)
      .catch(err => log.error({ err }, 'queueing webhook deliveries failed'))
      .finally(() => { sweeping = undefined; if (again) { again = false; sweep() } })
  }
  await fastify.database.listen('webhook_deliveries', { onMessage: sweep, onListening: listening => { if (listening) sweep() } })
  const timer = setInterval(sweep, config.webhookPollIntervalMs)
  timer.unref()
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    await sweeping
  })
}, { name: 'webhook-delivery', dependencies: ['config', 'database', 'jobs'] })

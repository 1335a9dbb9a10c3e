import fp from 'fastify-plugin'

const PURGE_INTERVAL_MS = 3600_000

/** Purges events past their retention hourly (services/events.ts); one instance at a time does the work. */
export default fp(async function eventRetention (fastify) {
  const purge = () => {
    fastify.eventsService.purge().catch(err => fastify.log.error({ err }, 'purging old events failed'))
  }
  const timer = setInterval(purge, PURGE_INTERVAL_MS)
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}, { name: 'event-retention', dependencies: ['services'] })

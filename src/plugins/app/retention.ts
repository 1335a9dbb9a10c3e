import fp from 'fastify-plugin'
import { createRetentionService, type RetentionService } from '../../services/retention.js'

declare module 'fastify' {
  interface FastifyInstance { retention: RetentionService }
}

/** Retention (services/retention.ts): the one recurring purge job, registered on the job queue; a run in progress ends before the database closes. */
export default fp(async function retention (fastify) {
  const { config, database } = fastify
  const service = await createRetentionService({
    db: database.db, dbKind: database.kind, config, jobs: fastify.jobs, users: fastify.usersService, log: fastify.log, metrics: fastify.appMetrics
  })
  fastify.decorate('retention', service)
  fastify.addHook('onClose', async () => { await service.stop() })
}, { name: 'retention', dependencies: ['config', 'database', 'jobs', 'services', 'metrics'] })

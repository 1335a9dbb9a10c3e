import fp from 'fastify-plugin'
import { createJobQueue, type JobQueue } from '../../jobs/job-queue.js'

declare module 'fastify' {
  interface FastifyInstance { jobs: JobQueue }
}

/** The job queue (pg-boss) on the application's database; handlers register on it, and it stops before the database closes. */
export default fp(async function jobs (fastify) {
  const queue = await createJobQueue({ db: fastify.database.db, log: fastify.log })
  fastify.decorate('jobs', queue)
  fastify.addHook('onClose', async () => {
    try { await queue.stop() } catch (err) { fastify.log.error({ err }, 'stopping the job queue failed') }
  })
}, { name: 'jobs', dependencies: ['config', 'database'] })

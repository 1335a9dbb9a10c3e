import fp from 'fastify-plugin'
import { connectDatabase, type DatabaseHandle } from '../../db/connect.js'
import { assertMigrated, createMigrator } from '../../db/migrate.js'

declare module 'fastify' {
  interface FastifyInstance { database: DatabaseHandle }
}

/** Connects PostgreSQL (DATABASE_URL) or the embedded one, and brings the schema up to date. */
export default fp(async function database (fastify) {
  const handle = await connectDatabase(fastify.config, fastify.log, fastify.appMetrics.observeQuery)
  fastify.decorate('database', handle)
  fastify.addHook('onClose', async () => {
    try { await handle.close() } catch (err) { fastify.log.error({ err }, 'closing the database failed') }
  })
  // Kysely's Migrator takes an advisory lock, so instances starting together migrate once.
  const applied = assertMigrated(await createMigrator(handle.db).migrateToLatest())
  for (const m of applied) fastify.log.info({ migration: m.migrationName, direction: m.direction }, 'migration applied')
}, { name: 'database', dependencies: ['config', 'metrics'] })

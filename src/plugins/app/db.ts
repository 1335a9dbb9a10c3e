import fp from 'fastify-plugin'
import type { onSendHookHandler } from 'fastify'
import { connectDatabase, connectReplica, type DatabaseHandle } from '../../db/connect.js'
import { assertMigrated, createMigrator } from '../../db/migrate.js'
import { primaryOnly, replicaReads, type LagTolerantReads } from '../../db/read-routing.js'
import { createResilientTtlCache } from '../../lib/ttl-cache.js'
import { assertPiiKeys } from '../../services/pii.js'

declare module 'fastify' {
  interface FastifyInstance {
    database: DatabaseHandle
    /** Lists, the audit trail and exports: on the replica when DATABASE_REPLICA_URL is set. */
    lagTolerantReads: LagTolerantReads
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Connects PostgreSQL (DATABASE_URL) or the embedded one, and brings the schema up to date. With
 * DATABASE_REPLICA_URL, also the replica, and every write request of a signed-in caller notes its
 * position before the answer leaves, so that caller's next lag-tolerant read (on any instance,
 * through Redis) waits for the replica to have it or goes to the primary (see read-routing.ts).
 */
export default fp(async function database (fastify) {
  const { config } = fastify
  const handle = await connectDatabase(config, fastify.log, fastify.appMetrics.observeQuery)
  fastify.decorate('database', handle)
  fastify.addHook('onClose', async () => {
    try { await handle.close() } catch (err) { fastify.log.error({ err }, 'closing the database failed') }
  })
  // Kysely's Migrator takes an advisory lock, so instances starting together migrate once.
  const applied = assertMigrated(await createMigrator(handle.db).migrateToLatest())
  for (const m of applied) fastify.log.info({ migration: m.migrationName, direction: m.direction }, 'migration applied')
  // Before anything is read or written: a key missing (or wrong) for data sealed here stops the
  // start. The app never becomes ready then, so its onClose hooks will not run: close here.
  try {
    await assertPiiKeys(handle.db)
  } catch (err) {
    await handle.close().catch(() => {})
    throw err
  }

  if (!config.databaseReplicaUrl) {
    fastify.decorate('lagTolerantReads', primaryOnly(handle.db, handle.compiled))
    return
  }
  const replica = connectReplica(config.databaseReplicaUrl, config, fastify.log, fastify.appMetrics.observeQuery)
  fastify.addHook('onClose', async () => {
    try { await replica.close() } catch (err) { fastify.log.error({ err }, 'closing the database replica failed') }
  })
  const marks = createResilientTtlCache<string>(fastify.redis, 'write-lsn:', fastify.log)
  const reads = replicaReads(handle, replica, marks, fastify.log, target => fastify.appMetrics.lagTolerantRead(target))
  fastify.decorate('lagTolerantReads', reads)
  const noteWrite: onSendHookHandler = async (request, _reply, payload) => {
    if (request.actor) await reads.wrote(request.actor.id)
    return payload
  }
  // Chosen per route as it is added: reads carry no hook.
  fastify.addHook('onRoute', route => {
    if ([route.method].flat().every(method => SAFE_METHODS.has(method))) return
    route.onSend = [route.onSend ?? []].flat().concat(noteWrite)
  })
}, { name: 'database', dependencies: ['config', 'metrics', 'redis'] })

import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { statementKind, type AppMetrics, type StatementKind } from '../../lib/app-metrics.js'
import type { JobQueue } from '../../jobs/job-queue.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry
    appMetrics: AppMetrics
  }
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]

/**
 * Prometheus metrics: the process defaults (event-loop delay, heap, RSS, CPU), request durations
 * by route template (never the raw URL, so ids do not explode the label set), statement
 * durations by kind, rate-limit rejections, logins, refresh rotations and reuse, the job backlog
 * and whether Redis is being stood in for. A registry per app instance, so several apps in one
 * process (the tests) do not collide.
 */
export default fp(async function metrics (fastify) {
  const registers = [new Registry()]
  const [registry] = registers
  collectDefaultMetrics({ register: registry })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by route template, method and status code',
    labelNames: ['route', 'method', 'status_code'] as const,
    buckets: DURATION_BUCKETS,
    registers
  })
  const queries = new Histogram({
    name: 'db_query_duration_seconds',
    help: 'Database statement duration in seconds, by kind (select, insert, update, delete, other)',
    labelNames: ['kind'] as const,
    buckets: QUERY_BUCKETS,
    registers
  })
  const rejections = new Counter({ name: 'rate_limit_rejections_total', help: 'Requests refused by a rate limit, by budget (api, auth, user)', labelNames: ['budget'] as const, registers })
  const logins = new Counter({ name: 'logins_total', help: 'Login attempts by outcome (success, failure, locked, mfa_required: right password, second factor awaited)', labelNames: ['outcome'] as const, registers })
  const rotations = new Counter({ name: 'refresh_rotations_total', help: 'Refresh tokens rotated', registers })
  const breachFailures = new Counter({ name: 'password_breach_check_failures_total', help: 'Breached-password checks that timed out or failed, letting the password through, by reason (timeout, error)', labelNames: ['reason'] as const, registers })
  const reuses = new Counter({ name: 'refresh_reuse_detections_total', help: 'Spent refresh tokens presented again (their login revoked)', registers })
  // Read when scraped (the database plugin is registered after this one), and before the job
  // gauges, whose query would otherwise be counted as waiting. No series embedded: no pool.
  const poolStats = () => fastify.database.poolStats?.()
  new Gauge({ // eslint-disable-line no-new
    name: 'db_pool_connections',
    help: 'Connections of the PostgreSQL pool, by state (open: all of them, idle: free for a query)',
    labelNames: ['state'] as const,
    registers,
    collect () {
      const stats = poolStats()
      if (!stats) return
      this.set({ state: 'open' }, stats.open)
      this.set({ state: 'idle' }, stats.idle)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'db_pool_waiting_requests',
    help: 'Queries waiting for a connection of the PostgreSQL pool (above 0 for long: the pool is too small or the database slow)',
    registers,
    collect () {
      const stats = poolStats()
      if (stats) this.set(stats.waiting)
    }
  })
  // Read when scraped (the queue and Redis are registered after this plugin); both job gauges
  // share one query per scrape.
  let scrape: ReturnType<JobQueue['backlog']> | undefined
  const readBacklog = () => {
    scrape ??= fastify.jobs.backlog().finally(() => setImmediate(() => { scrape = undefined }))
    return scrape
  }
  type Backlog = Awaited<ReturnType<JobQueue['backlog']>>[number]
  const backlogGauge = (name: string, help: string, value: (row: Backlog) => number) => new Gauge({
    name,
    help,
    labelNames: ['queue'] as const,
    registers,
    async collect () {
      this.reset()
      for (const row of await readBacklog()) this.set({ queue: row.queue }, value(row))
    }
  })
  backlogGauge('jobs_backlog', 'Jobs waiting to run, by queue', row => row.pending)
  backlogGauge('jobs_oldest_pending_age_seconds', 'Age of the oldest job waiting to run, by queue', row => row.oldestAgeSec)
  new Gauge({ // eslint-disable-line no-new
    name: 'redis_fallback_active',
    help: '1 while REDIS_URL (or REDIS_CLUSTER_NODES) is set but Redis is not connected, so shared state is kept in process',
    registers,
    collect () { this.set(fastify.redis && fastify.redis.status !== 'ready' ? 1 : 0) }
  })
  const lagTolerantReads = new Counter({
    name: 'db_lag_tolerant_reads_total',
    help: 'Reads that tolerate replica lag (lists, audit, exports) by where they ran: replica, or primary (a caller\'s write not replayed yet, or the replica down)',
    labelNames: ['target'] as const,
    registers
  })
  if (fastify.config.databaseReplicaUrl) {
    // Both gauges from one look per scrape.
    let lagScrape: Promise<number | undefined> | undefined
    const readLag = () => {
      lagScrape ??= fastify.lagTolerantReads.lagBytes().finally(() => setImmediate(() => { lagScrape = undefined }))
      return lagScrape
    }
    new Gauge({ // eslint-disable-line no-new
      name: 'db_replica_up',
      help: '1 while the replica (DATABASE_REPLICA_URL) answers and takes reads, 0 while they go to the primary instead',
      registers,
      async collect () { this.set(await readLag() === undefined ? 0 : 1) }
    })
    new Gauge({ // eslint-disable-line no-new
      name: 'db_replica_lag_bytes',
      help: 'WAL bytes the replica has not replayed yet (0 while it is down: see db_replica_up)',
      registers,
      async collect () { this.set(await readLag() ?? 0) }
    })
  }

  const purged = new Counter({ name: 'retention_purged_total', help: 'Rows the retention purge removed on this instance, by kind (deleted_users: erased)', labelNames: ['kind'] as const, registers })
  const lastRetention = new Gauge({ name: 'retention_last_run_timestamp_seconds', help: 'When this instance last finished a retention run (Unix time; 0: never). The purge runs on one instance at a time: take the max over instances', registers })

  // One child per label set, kept: prom-client would otherwise hash the labels on every observation.
  const byKind = new Map<StatementKind, Histogram.Internal<'kind'>>()
  const kinds = new Map<string, StatementKind>()
  fastify.decorate('metrics', registry)
  fastify.decorate('appMetrics', {
    observeQuery (sql, seconds) {
      let kind = kinds.get(sql)
      if (!kind) {
        kind = statementKind(sql)
        if (kinds.size < 5000) kinds.set(sql, kind)
      }
      let child = byKind.get(kind)
      if (!child) byKind.set(kind, child = queries.labels(kind))
      child.observe(seconds)
    },
    rateLimited: budget => rejections.inc({ budget }),
    login: outcome => logins.inc({ outcome }),
    refreshRotated: () => rotations.inc(),
    refreshReused: () => reuses.inc(),
    breachCheckFailed: reason => breachFailures.inc({ reason }),
    lagTolerantRead: target => lagTolerantReads.inc({ target }),
    retentionPurged: (kind, rows) => purged.inc({ kind }, rows),
    retentionRan: at => lastRetention.set(at.getTime() / 1000)
  } satisfies AppMetrics)

  const series = new Map<string, Histogram.Internal<'route' | 'method' | 'status_code'>>()
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${reply.statusCode} ${request.method} ${route}`
    let child = series.get(key)
    if (!child) series.set(key, child = duration.labels(route, request.method, String(reply.statusCode)))
    child.observe(reply.elapsedTime / 1000)
  })
}, { name: 'metrics', dependencies: ['config'] })

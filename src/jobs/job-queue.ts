import PgBoss from 'pg-boss'
import { CompiledQuery } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Executor } from '../repositories/users.js'

/** How a job name is retried: at most 1 + retryLimit tries, the n-th retry about retryDelaySec * 2^n s later when retryBackoff. */
export interface RetryPolicy { retryLimit: number, retryDelaySec: number, retryBackoff: boolean }

export interface JobDefinition<T> extends RetryPolicy {
  /** How often this instance looks for due jobs of this name; 0 runs them only through runDue. */
  pollIntervalMs: number
  /**
   * A recurring job: every polling instance offers one job per slot of this many seconds and
   * pg-boss keeps only the first (singletonSeconds), so it runs once per slot, on one instance.
   */
  everySec?: number
  /** Jobs taken at a time, and at most 10 batches per poll. */
  batchSize?: number
  /** Runs one job; a throw fails this try, which is retried by the policy. */
  handler (job: { id: string, data: T, attempt: number }): Promise<void>
}

/**
 * Background work that survives restarts: a job is added in the transaction of the change that
 * causes it (it exists only if that commits), taken by exactly one instance at a time, retried
 * with backoff, and run by the handler registered for its name. New background work registers a
 * handler here rather than writing a worker.
 */
export interface JobQueue {
  register<T extends object> (name: string, definition: JobDefinition<T>): Promise<void>
  /** Adds a job on the executor: the caller's transaction, or the database for a job of its own. */
  enqueue<T extends object> (ex: Executor, name: string, data: T): Promise<void>
  /** Runs the due jobs of a name now, until none is left; resolves to how many succeeded. One run at a time per name. */
  runDue (name: string): Promise<number>
  /** Per queue with waiting jobs: how many wait (due or not yet), and how long the oldest has. */
  backlog (): Promise<Array<{ queue: string, pending: number, oldestAgeSec: number }>>
  /** Stops polling, waits for running jobs, stops pg-boss. Idempotent. */
  stop (): Promise<void>
}

const MAX_BATCHES_PER_RUN = 10
const DEADLOCK = '40P01'

/**
 * Instances starting together on a database without the queue all create it, and
 * pgboss.create_queue run twice at once deadlocks (the queue row and the partition it attaches
 * are locked in opposite orders). PostgreSQL aborts one of them; its retry finds the queue made.
 */
async function createQueue (b: PgBoss, name: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await b.createQueue(name)
    } catch (err) {
      if ((err as { code?: string }).code !== DEADLOCK || attempt === 5) throw err
    }
  }
}

/** pg-boss runs its SQL through Kysely (pool or transaction, PostgreSQL or PGlite alike), without our camelCase mapping. */
function bossDb (ex: Executor): PgBoss.Db {
  const raw = ex.withoutPlugins()
  return {
    async executeSql (text: string, values?: unknown[]) {
      const result = await raw.executeQuery(CompiledQuery.raw(text, values ?? []))
      return { rows: result.rows as any[] }
    }
  }
}

/**
 * The job queue on pg-boss, over the application's own database handle, so it runs the same on
 * PostgreSQL and on the embedded database. Its schema is created by our migrations
 * (db/migrations/004_job_queue.up.sql), so pg-boss starts with migrate: false.
 */
export async function createJobQueue ({ db, log }: { db: Executor, log: FastifyBaseLogger }): Promise<JobQueue> {
  const definitions = new Map<string, JobDefinition<any>>()
  const running = new Map<string, Promise<number>>()
  const timers: NodeJS.Timeout[] = []
  let stopped = false
  let stopping: Promise<void> | undefined
  let boss: PgBoss | undefined

  async function ensureBoss (supervise: boolean) {
    if (boss) return boss
    // Maintenance (expiring jobs of a crashed instance, archiving) runs where jobs are worked.
    boss = new PgBoss({ db: bossDb(db), migrate: false, schedule: false, supervise })
    boss.on('error', err => log.error({ err }, 'job queue error'))
    await boss.start()
    return boss
  }

  async function runBatch (b: PgBoss, name: string, definition: JobDefinition<any>, batchSize: number) {
    const jobs = await b.fetch<object>(name, { batchSize, includeMetadata: true })
    let succeeded = 0
    for (const job of jobs) {
      try {
        await definition.handler({ id: job.id, data: job.data, attempt: job.retryCount + 1 })
      } catch (err) {
        const message = (err as Error)?.message ?? String(err)
        await b.fail(name, job.id, { message })
        continue
      }
      await b.complete(name, job.id)
      succeeded++
    }
    return { succeeded, full: jobs.length === batchSize }
  }

  async function drain (name: string) {
    const definition = definitions.get(name)
    if (!definition || !boss) throw new Error(`no job handler registered for ${name}`)
    const batchSize = definition.batchSize ?? 20
    let total = 0
    for (let i = 0; i < MAX_BATCHES_PER_RUN; i++) {
      const { succeeded, full } = await runBatch(boss, name, definition, batchSize)
      total += succeeded
      if (!full || stopped) break
    }
    return total
  }

  function runDue (name: string) {
    let run = running.get(name)
    if (!run) {
      run = drain(name).finally(() => running.delete(name))
      running.set(name, run)
    }
    return run
  }

  return {
    async register (name, definition) {
      if (definitions.has(name)) throw new Error(`a job handler for ${name} is already registered`)
      const b = await ensureBoss(definition.pollIntervalMs > 0)
      // The policy travels with every job (enqueue), so the queue's own defaults never matter.
      await createQueue(b, name)
      definitions.set(name, definition)
      if (definition.pollIntervalMs > 0) {
        const timer = setInterval(() => {
          runDue(name).catch(err => log.error({ err, job: name }, 'job run failed'))
        }, definition.pollIntervalMs)
        timer.unref()
        timers.push(timer)
      }
      if (definition.everySec && definition.pollIntervalMs > 0) {
        const everySec = definition.everySec
        const offer = () => {
          b.send(name, {}, { singletonSeconds: everySec, retryLimit: definition.retryLimit })
            .catch(err => log.error({ err, job: name }, 'offering a recurring job failed'))
        }
        offer()
        const timer = setInterval(offer, everySec * 1000)
        timer.unref()
        timers.push(timer)
      }
    },

    async enqueue (ex, name, data) {
      const definition = definitions.get(name)
      if (!definition || !boss) throw new Error(`no job handler registered for ${name}`)
      await boss.send(name, data, {
        db: bossDb(ex),
        retryLimit: definition.retryLimit,
        retryDelay: definition.retryDelaySec,
        retryBackoff: definition.retryBackoff
      })
    },

    runDue,

    async backlog () {
      const { rows } = await db.withoutPlugins().executeQuery(CompiledQuery.raw(
        `select name as queue, count(*)::int as pending, extract(epoch from now() - min(created_on))::float8 as "oldestAgeSec"
           from pgboss.job where state in ('created', 'retry') group by name`, []))
      return rows as Array<{ queue: string, pending: number, oldestAgeSec: number }>
    },

    stop () {
      stopping ??= (async () => {
        stopped = true
        for (const timer of timers) clearInterval(timer)
        await Promise.allSettled(running.values())
        await boss?.stop({ graceful: false, wait: true })
      })()
      return stopping
    }
  }
}

import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import type { JobQueue } from '../jobs/job-queue.js'
import type { AppMetrics } from '../lib/app-metrics.js'
import { listUsersDeletedBefore, purgeAuditBatch, purgeBatch, PURGE_RULES, whileHoldingLock, type PurgeKind } from '../repositories/retention.js'
import { EVENT_RETENTION_MS } from './events.js'
import type { RequestContext } from './context.js'
import type { UsersService } from './users.js'

export const RETENTION_JOB = 'retention'
/** Rows per statement, so no purge holds its locks for long; and at most this many statements of a kind per run (the next run goes on). */
export const RETENTION_BATCH = 1000
const MAX_BATCHES_PER_KIND = 100
const LOCK = 'retention'

/** Who erases by retention: no actor, marked in the audit row's request id (as the bootstrap's). */
const RETENTION_CONTEXT: RequestContext = { actor: null, actorId: null, ip: null, userAgent: null, requestId: 'retention' }

export type RetentionKind = PurgeKind | 'deleted_users' | 'audit'
export type RetentionReport = Record<RetentionKind, number>

export interface RetentionService {
  /**
   * Purges everything past its retention now, in batches; resolves to the rows per kind, or to
   * undefined when another instance is running the purge (one at a time). Rejects when a kind
   * failed (the others were purged). Concurrent calls on this instance share one run.
   */
  run (): Promise<RetentionReport | undefined>
  /** Ends a run in progress after its current statement (the rest waits for the next run) and waits for it. */
  stop (): Promise<void>
}

/**
 * Retention (CONTRACT.md, "Privacy and retention"): every purge of the service in one place, as
 * one recurring job (RETENTION_INTERVAL) on the job queue, which offers it once per interval and
 * hands it to one instance; a session lock keeps a second run off while one is going on
 * (a slow run overlapping the next slot, or a direct call). The rules are PURGE_RULES
 * (repositories/retention.ts), with the soft-deleted users (RETENTION_DELETED_USERS, erased as
 * POST /erase does) and the audit trail (RETENTION_AUDIT).
 */
export async function createRetentionService ({ db, dbKind, config, jobs, users, log, metrics }: {
  db: DB
  dbKind: 'postgres' | 'embedded'
  config: Config
  jobs: JobQueue
  users: Pick<UsersService, 'erase'>
  log: FastifyBaseLogger
  metrics: AppMetrics
}): Promise<RetentionService> {
  const keptMs = { ended: config.retentionEndedMs, none: 0, events: EVENT_RETENTION_MS }
  let stopped = false

  /** Runs batches until one comes back short (nothing more is due) or the cap; the rows purged. */
  async function inBatches (batch: () => Promise<number>) {
    let total = 0
    for (let i = 0; i < MAX_BATCHES_PER_KIND; i++) {
      const purged = await batch()
      total += purged
      if (purged < RETENTION_BATCH || stopped) break
    }
    return total
  }

  /** Erases the users soft-deleted before the cutoff, one transaction each; a failure is logged and the next goes on. */
  async function eraseDeletedUsers (cutoff: Date) {
    let erased = 0
    let after: { deletedAt: Date, id: string } | undefined
    for (let i = 0; i < MAX_BATCHES_PER_KIND; i++) {
      const due = await listUsersDeletedBefore(db, cutoff, after, RETENTION_BATCH)
      for (const user of due) {
        if (stopped) return erased
        try {
          if (await users.erase(RETENTION_CONTEXT, user.id, cutoff)) erased++
        } catch (err) {
          log.error({ err, userId: user.id }, 'retention: erasing a deleted user failed')
        }
      }
      if (due.length < RETENTION_BATCH) break
      after = due[due.length - 1]
    }
    return erased
  }

  /** Every kind in turn; one that fails is logged and the others still go. */
  async function purgeAll () {
    const now = Date.now()
    const before = (ms: number) => new Date(now - ms)
    const report = Object.fromEntries(['deleted_users', 'audit', ...Object.keys(PURGE_RULES)].map(kind => [kind, 0])) as RetentionReport
    const failed: RetentionKind[] = []
    const purge = async (kind: RetentionKind, work: () => Promise<number>) => {
      try {
        report[kind] = await work()
      } catch (err) {
        report[kind] = 0
        failed.push(kind)
        log.error({ err, kind }, 'retention: purging failed; the other kinds go on')
      }
    }
    // Erasures first: they remove the user's tokens and logins themselves, and write their audit row now.
    const { retentionDeletedUsersMs: deletedUsersMs, retentionAuditMs: auditMs } = config
    if (deletedUsersMs !== undefined) await purge('deleted_users', () => eraseDeletedUsers(before(deletedUsersMs)))
    if (auditMs !== undefined) await purge('audit', () => inBatches(() => purgeAuditBatch(db, before(auditMs), RETENTION_BATCH)))
    for (const kind of Object.keys(PURGE_RULES) as PurgeKind[]) {
      if (stopped) break
      const cutoff = before(keptMs[PURGE_RULES[kind].kept])
      await purge(kind, () => inBatches(() => purgeBatch(db, kind, cutoff, RETENTION_BATCH)))
    }
    return { report, failed }
  }

  let running: Promise<RetentionReport | undefined> | undefined
  async function runExclusive () {
    const outcome = await whileHoldingLock(db, dbKind, LOCK, purgeAll)
    if (!outcome) return undefined
    const { report, failed } = outcome
    for (const [kind, rows] of Object.entries(report)) metrics.retentionPurged(kind, rows)
    const purged = Object.entries(report).filter(([, rows]) => rows > 0)
    if (purged.length > 0) log.info({ purged: Object.fromEntries(purged) }, 'retention purge done')
    // A failed kind fails the run (and so its job), after the others were purged and counted.
    if (failed.length > 0) throw new Error(`retention: purging ${failed.join(', ')} failed`)
    metrics.retentionRan(new Date())
    return report
  }
  const run = () => {
    if (stopped) return Promise.resolve(undefined)
    running ??= runExclusive().finally(() => { running = undefined })
    return running
  }

  const everySec = Math.round(config.retentionIntervalMs / 1000)
  await jobs.register(RETENTION_JOB, {
    everySec: everySec > 0 ? everySec : undefined,
    // Looks for its job at least once a minute, and as often as it is offered when that is sooner.
    pollIntervalMs: everySec > 0 ? Math.min(60_000, everySec * 1000) : 0,
    retryLimit: 0,
    retryDelaySec: 60,
    retryBackoff: false,
    async handler () {
      await run().catch(err => { log.error({ err }, 'retention run failed'); throw err })
    }
  })

  return {
    run,
    async stop () {
      stopped = true
      await running?.catch(() => {})
    }
  }
}

import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

const WEBHOOK_COLUMNS = ['id', 'url', 'events', 'description', 'active', 'consecutiveFailures', 'circuitOpenUntil', 'createdAt', 'updatedAt'] as const
const DELIVERY_COLUMNS = ['seq', 'id', 'eventId', 'eventType', 'status', 'attempts', 'responseStatus', 'lastError', 'lastAttemptAt', 'nextAttemptAt', 'createdAt'] as const

export interface NewWebhook { id: string, url: string, events: string[], description: string | null, active: boolean, secretSealed: string, createdBy: string | null }

export function insertWebhook (db: Executor, webhook: NewWebhook) {
  return db.insertInto('webhooks').values(webhook).returning(WEBHOOK_COLUMNS).executeTakeFirstOrThrow()
}

export function listWebhooks (db: Executor, limit: number) {
  return db.selectFrom('webhooks').select(WEBHOOK_COLUMNS).orderBy('createdAt', 'desc').orderBy('id', 'desc').limit(limit).execute()
}

export function findWebhook (db: Executor, id: string) {
  return db.selectFrom('webhooks').select(WEBHOOK_COLUMNS).where('id', '=', id).executeTakeFirst()
}

export type WebhookRow = NonNullable<Awaited<ReturnType<typeof findWebhook>>>

export function updateWebhook (db: Executor, id: string, changes: { url?: string, events?: string[], description?: string | null, active?: boolean }) {
  return db.updateTable('webhooks').set({ ...changes, updatedAt: sql`now()` as any }).where('id', '=', id)
    .returning(WEBHOOK_COLUMNS).executeTakeFirst()
}

/** Replaces the secret; the one it replaces keeps signing until previousExpiresAt. */
export function rotateWebhookSecret (db: Executor, id: string, secretSealed: string, previousExpiresAt: Date) {
  return db.updateTable('webhooks')
    .set(eb => ({ previousSecretSealed: eb.ref('secretSealed'), previousSecretExpiresAt: previousExpiresAt, secretSealed, updatedAt: sql`now()` as any }))
    .where('id', '=', id).returning(WEBHOOK_COLUMNS).executeTakeFirst()
}

export async function deleteWebhook (db: Executor, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** A webhook's deliveries, newest first, keyset paged on seq (a page starts strictly before `beforeSeq`). */
export function listDeliveries (db: Executor, webhookId: string, beforeSeq: string | undefined, limit: number) {
  let query = db.selectFrom('webhookDeliveries').select(DELIVERY_COLUMNS).where('webhookId', '=', webhookId)
  if (beforeSeq !== undefined) query = query.where(sql<boolean>`seq < ${beforeSeq}::bigint`)
  return query.orderBy('seq', 'desc').limit(limit).execute()
}

export type DeliveryRow = Awaited<ReturnType<typeof listDeliveries>>[number]

/**
 * Makes a delivery due now (a manual retry): a finished one becomes pending again; one whose
 * attempt is queued or running is left to it.
 */
export function retryDelivery (db: Executor, webhookId: string, id: string) {
  return db.updateTable('webhookDeliveries')
    .set({ status: 'pending', nextAttemptAt: sql`now()` as any })
    .where('id', '=', id).where('webhookId', '=', webhookId)
    .where(eb => eb.or([eb('status', '<>', 'pending'), eb('jobQueued', '=', false)]))
    .returning(DELIVERY_COLUMNS).executeTakeFirst()
}

export function findDelivery (db: Executor, webhookId: string, id: string) {
  return db.selectFrom('webhookDeliveries').select(DELIVERY_COLUMNS).where('id', '=', id).where('webhookId', '=', webhookId).executeTakeFirst()
}

/**
 * Marks up to `limit` due deliveries that have no job yet as queued and returns their ids, so
 * the caller adds their jobs in the same transaction. SKIP LOCKED: instances sweeping at once
 * take different rows, and each delivery gets one job per attempt.
 */
export async function claimDueDeliveries (trx: Executor, limit: number, webhookId: string | null): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    update webhook_deliveries set job_queued = true
    where id in (
      select id from webhook_deliveries
      where status = 'pending' and not job_queued and next_attempt_at <= now()
        and (${webhookId}::uuid is null or webhook_id = ${webhookId}::uuid)
      order by next_attempt_at limit ${limit} for update skip locked)
    returning id`.execute(trx)
  return rows.map(row => row.id)
}

/** What one attempt needs: the delivery (if still pending), its webhook with its sealed secrets, and its event (if still kept). */
export function findDeliveryToAttempt (db: Executor, id: string) {
  return db.selectFrom('webhookDeliveries as d')
    .innerJoin('webhooks as w', 'w.id', 'd.webhookId')
    .leftJoin('events as e', 'e.id', 'd.eventId')
    .select([
      'd.id', 'd.webhookId', 'd.eventId', 'd.attempts', 'w.url', 'w.active', 'w.secretSealed', 'w.previousSecretSealed',
      'w.previousSecretExpiresAt', 'w.circuitOpenUntil', 'e.type as eventType', 'e.data as eventData', 'e.createdAt as eventCreatedAt'
    ])
    .where('d.id', '=', id).where('d.status', '=', 'pending')
    .executeTakeFirst()
}

/** Puts a delivery back to wait, without an attempt (its webhook's circuit is open). */
export async function postponeDelivery (db: Executor, id: string, until: Date) {
  await db.updateTable('webhookDeliveries').set({ nextAttemptAt: until, jobQueued: false }).where('id', '=', id).execute()
}

export interface AttemptOutcome {
  responseStatus: number | null
  error: string | null
  /** null: finished (succeeded when error is null, else failed); a date: pending until then. */
  nextAttemptAt: Date | null
}

/** Records an attempt on the delivery. */
export async function recordAttempt (db: Executor, id: string, outcome: AttemptOutcome) {
  const status = outcome.error === null ? 'succeeded' : outcome.nextAttemptAt ? 'pending' : 'failed'
  await db.updateTable('webhookDeliveries')
    .set(eb => ({
      status,
      attempts: eb('attempts', '+', 1),
      responseStatus: outcome.responseStatus,
      lastError: outcome.error?.slice(0, 500) ?? null,
      lastAttemptAt: sql`now()` as any,
      nextAttemptAt: outcome.nextAttemptAt,
      jobQueued: false
    }))
    .where('id', '=', id).execute()
}

/**
 * The circuit breaker's count: a success closes the circuit; a failure counts one more, and
 * at the threshold opens it until openUntil. Resolves to the webhook's count after it.
 */
export async function recordWebhookOutcome (db: Executor, id: string, succeeded: boolean, threshold: number, openUntil: Date) {
  if (succeeded) {
    await db.updateTable('webhooks').set({ consecutiveFailures: 0, circuitOpenUntil: null }).where('id', '=', id).execute()
    return
  }
  await sql`update webhooks set consecutive_failures = consecutive_failures + 1,
      circuit_open_until = case when consecutive_failures + 1 >= ${threshold} then ${openUntil} else circuit_open_until end
    where id = ${id}`.execute(db)
}

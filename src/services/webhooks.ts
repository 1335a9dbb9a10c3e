import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { Webhook as StandardWebhook } from 'standardwebhooks'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import type { JobQueue } from '../jobs/job-queue.js'
import { notFound, validationError } from '../errors.js'
import { changesBetween } from '../lib/changes.js'
import { decodeCursor, encodeCursor, listFingerprint } from '../lib/cursor.js'
import { createSecretBox } from '../lib/secret-box.js'
import { postTo, RefusedTarget, resolveTarget, systemResolver, type Resolver } from '../lib/webhook-target.js'
import { insertAudit } from '../repositories/audit.js'
import * as repo from '../repositories/webhooks.js'
import type { DeliveryListQuery, Webhook, WebhookCreate, WebhookDelivery, WebhookPatch } from '../../schemas/webhook.js'
import type { RequestContext } from './context.js'

export const DELIVER_WEBHOOK_JOB = 'webhook.deliver'
/** The attempt is ours to retry (the backoff below); pg-boss only retries a job whose instance died mid-attempt. */
const JOB_RETRY = { retryLimit: 2, retryDelaySec: 30, retryBackoff: false }
const BACKOFF_FACTOR = 4
const MAX_RESPONSE_BYTES = 64 * 1024
const MAX_WEBHOOKS_LISTED = 100

const iso = (d: Date | null) => d === null ? null : d.toISOString()

function toWebhook (row: repo.WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    active: row.active,
    consecutiveFailures: row.consecutiveFailures,
    circuitOpenUntil: iso(row.circuitOpenUntil),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString()
  }
}

function toDelivery (row: repo.DeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    eventId: row.eventId,
    eventType: row.eventType,
    status: row.status as WebhookDelivery['status'],
    attempts: row.attempts,
    responseStatus: row.responseStatus,
    lastError: row.lastError,
    lastAttemptAt: iso(row.lastAttemptAt),
    nextAttemptAt: iso(row.nextAttemptAt),
    createdAt: row.createdAt.toISOString()
  }
}

/** A URL's path and query may carry a credential of the receiver's (many services put one there): audit rows keep only the origin. */
const originOf = (url: string) => new URL(url).origin

/** A Standard Webhooks secret: whsec_ and 32 random bytes in base64. */
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`

/**
 * The wait after the n-th failed attempt: base * 4^(n-1), with ±20 % jitter so that the retries of
 * many deliveries that failed together spread out. With the defaults (1 min, 7 attempts) the last
 * attempt comes about 23 h after the first.
 */
export function backoffMs (failedAttempts: number, baseMs: number, random = Math.random): number {
  return Math.round(baseMs * BACKOFF_FACTOR ** (failedAttempts - 1) * (0.8 + 0.4 * random()))
}

/**
 * Webhooks: registration (webhooks:manage) and delivery. The trigger that writes each event
 * (db/migrations/013_events_webhooks.up.sql) also writes a delivery per matching active webhook,
 * in the change's transaction. A sweep (on the database's notification and every poll interval)
 * adds a job for each due delivery; the job makes one attempt and schedules the next one.
 *
 * Circuit breaker: after WEBHOOK_CIRCUIT_THRESHOLD failed attempts in a row (any of its
 * deliveries), a webhook's circuit opens for WEBHOOK_CIRCUIT_COOLDOWN: its due deliveries wait
 * until then without spending an attempt. The first attempt after that is a probe: a success
 * closes the circuit, a failure opens it again for another cooldown.
 *
 * Rotation: the new secret signs at once; the previous one also signs (a second v1 signature in
 * the same header) for WEBHOOK_SECRET_GRACE, so a receiver can switch without losing deliveries.
 */
export async function createWebhooksService ({ db, config, jobs, log, resolve = systemResolver }: {
  db: DB, config: Config, jobs: JobQueue, log: FastifyBaseLogger, resolve?: Resolver
}) {
  const box = createSecretBox(config.mfaEncryptionKey)
  const owner = (id: string) => `webhook:${id}`

  async function checkUrl (url: string) {
    try {
      await resolveTarget(new URL(url), config.webhookAllowPrivate, resolve)
    } catch (err) {
      if (err instanceof RefusedTarget) throw validationError(`The webhook URL is refused: ${err.message}`, [{ field: 'url', message: err.message }])
      throw err
    }
  }

  async function existing (id: string) {
    const row = await repo.findWebhook(db, id)
    if (!row) throw notFound('Webhook')
    return row
  }

  /** The signatures for a message: the current secret's, and the previous one's during its grace. */
  function signatures (row: { id: string, secretSealed: string, previousSecretSealed: string | null, previousSecretExpiresAt: Date | null },
    messageId: string, at: Date, body: string): string {
    const secrets = [box.open(row.secretSealed, owner(row.id))]
    if (row.previousSecretSealed && row.previousSecretExpiresAt && row.previousSecretExpiresAt > at) {
      secrets.push(box.open(row.previousSecretSealed, owner(row.id)))
    }
    return secrets.map(secret => new StandardWebhook(secret).sign(messageId, at, body)).join(' ')
  }

  /** One attempt of one delivery; never throws for the receiver's failure (that is recorded and retried). */
  async function attempt (deliveryId: string) {
    const delivery = await repo.findDeliveryToAttempt(db, deliveryId)
    if (!delivery) return
    const now = new Date()
    if (delivery.circuitOpenUntil && delivery.circuitOpenUntil > now) {
      await repo.postponeDelivery(db, delivery.id, delivery.circuitOpenUntil)
      return
    }
    if (!delivery.active || delivery.eventData === null || !delivery.eventType || !delivery.eventCreatedAt) {
      const error = delivery.active ? 'the event is no longer kept' : 'the webhook is inactive'
      await repo.recordAttempt(db, delivery.id, { responseStatus: null, error, nextAttemptAt: null })
      return
    }
    const body = JSON.stringify({ id: delivery.eventId, type: delivery.eventType, createdAt: delivery.eventCreatedAt.toISOString(), data: delivery.eventData })
    let responseStatus: number | null = null
    let error: string | null = null
    try {
      const url = new URL(delivery.url)
      const target = await resolveTarget(url, config.webhookAllowPrivate, resolve)
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'user-management-api-webhooks/1',
        'webhook-id': delivery.eventId,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signatures({ ...delivery, id: delivery.webhookId }, delivery.eventId, now, body)
      }
      responseStatus = (await postTo(url, target, headers, body, { timeoutMs: config.webhookTimeoutMs, maxBodyBytes: MAX_RESPONSE_BYTES })).status
      if (responseStatus < 200 || responseStatus > 299) error = `the receiver answered ${responseStatus}`
    } catch (err) {
      error = err instanceof RefusedTarget ? err.message : `the request failed: ${(err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message}`
    }
    const attempts = delivery.attempts + 1
    const nextAttemptAt = error === null || attempts >= config.webhookMaxAttempts
      ? null
      : new Date(Date.now() + backoffMs(attempts, config.webhookRetryBaseMs))
    if (error) log.warn({ webhookId: delivery.webhookId, deliveryId: delivery.id, attempt: attempts, responseStatus, error }, 'webhook delivery attempt failed')
    await db.transaction().execute(async trx => {
      await repo.recordAttempt(trx, delivery.id, { responseStatus: responseStatus && responseStatus >= 100 && responseStatus <= 599 ? responseStatus : null, error, nextAttemptAt })
      await repo.recordWebhookOutcome(trx, delivery.webhookId, error === null, config.webhookCircuitThreshold, new Date(Date.now() + config.webhookCircuitCooldownMs))
    })
  }

  await jobs.register<{ deliveryId: string }>(DELIVER_WEBHOOK_JOB, {
    ...JOB_RETRY,
    pollIntervalMs: config.webhookPollIntervalMs,
    handler: ({ data }) => attempt(data.deliveryId)
  })

  /** Adds a job for every due delivery that has none (of one webhook, or all), in batches; resolves to how many. */
  async function sweep (webhookId: string | null = null): Promise<number> {
    let total = 0
    for (;;) {
      const claimed = await db.transaction().execute(async trx => {
        const ids = await repo.claimDueDeliveries(trx, 100, webhookId)
        for (const deliveryId of ids) await jobs.enqueue(trx, DELIVER_WEBHOOK_JOB, { deliveryId })
        return ids.length
      })
      total += claimed
      if (claimed < 100) return total
    }
  }

  return {
    async create (ctx: RequestContext, input: WebhookCreate): Promise<Webhook & { secret: string }> {
      await checkUrl(input.url)
      const id = randomUUID()
      const secret = newSecret()
      return db.transaction().execute(async trx => {
        const row = await repo.insertWebhook(trx, {
          id,
          url: input.url,
          events: input.events,
          description: input.description ?? null,
          active: input.active ?? true,
          secretSealed: box.seal(secret, owner(id)),
          createdBy: ctx.actorId
        })
        await insertAudit(trx, ctx, { action: 'webhook.created', userId: null, changes: { webhookId: id, url: originOf(row.url), events: row.events, active: row.active } })
        return { ...toWebhook(row), secret }
      })
    },

    async list (): Promise<Webhook[]> {
      return (await repo.listWebhooks(db, MAX_WEBHOOKS_LISTED)).map(toWebhook)
    },

    async get (id: string): Promise<Webhook> {
      return toWebhook(await existing(id))
    },

    async update (ctx: RequestContext, id: string, patch: WebhookPatch): Promise<Webhook> {
      if (patch.url !== undefined) await checkUrl(patch.url)
      return db.transaction().execute(async trx => {
        const before = await repo.findWebhook(trx, id)
        if (!before) throw notFound('Webhook')
        const after = await repo.updateWebhook(trx, id, patch)
        if (!after) throw notFound('Webhook')
        const shown = (row: repo.WebhookRow) => ({ ...toWebhook(row), url: originOf(row.url) })
        const changes = changesBetween(shown(before), shown(after), ['url', 'events', 'description', 'active'])
        await insertAudit(trx, ctx, { action: 'webhook.updated', userId: null, changes: { webhookId: id, ...changes } })
        return toWebhook(after)
      })
    },

    async remove (ctx: RequestContext, id: string): Promise<void> {
      await db.transaction().execute(async trx => {
        if (!await repo.deleteWebhook(trx, id)) throw notFound('Webhook')
        await insertAudit(trx, ctx, { action: 'webhook.deleted', userId: null, changes: { webhookId: id } })
      })
    },

    async rotateSecret (ctx: RequestContext, id: string): Promise<Webhook & { secret: string }> {
      const secret = newSecret()
      return db.transaction().execute(async trx => {
        const row = await repo.rotateWebhookSecret(trx, id, box.seal(secret, owner(id)), new Date(Date.now() + config.webhookSecretGraceMs))
        if (!row) throw notFound('Webhook')
        await insertAudit(trx, ctx, { action: 'webhook.secret_rotated', userId: null, changes: { webhookId: id } })
        return { ...toWebhook(row), secret }
      })
    },

    async deliveries (id: string, query: DeliveryListQuery) {
      await existing(id)
      const fingerprint = listFingerprint(['webhook-deliveries', id])
      const before = query.cursor ? decodeCursor(query.cursor, fingerprint).value : undefined
      if (before !== undefined && !/^\d{1,18}$/.test(before)) throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
      const rows = await repo.listDeliveries(db, id, before, query.limit + 1)
      const hasNext = rows.length > query.limit
      const page = rows.slice(0, query.limit)
      const last = page[page.length - 1]
      return {
        data: page.map(toDelivery),
        pagination: { limit: query.limit, hasNext, nextCursor: hasNext && last ? encodeCursor(fingerprint, { value: String(last.seq), id: last.id }) : null }
      }
    },

    /** Makes the delivery due now (202: it is attempted by the next sweep). */
    async retry (id: string, deliveryId: string): Promise<WebhookDelivery> {
      const row = await repo.retryDelivery(db, id, deliveryId) ?? await repo.findDelivery(db, id, deliveryId)
      if (!row) throw notFound('Delivery')
      return toDelivery(row)
    },

    sweep,

    /** Sweeps (one webhook's deliveries, or all), then runs the due jobs on this instance; resolves to the attempts made. */
    async deliverPending (webhookId: string | null = null): Promise<number> {
      await sweep(webhookId)
      return jobs.runDue(DELIVER_WEBHOOK_JOB)
    }
  }
}

export type WebhooksService = Awaited<ReturnType<typeof createWebhooksService>>

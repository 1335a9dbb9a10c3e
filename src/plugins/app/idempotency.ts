import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, onResponseAsyncHookHandler, onSendAsyncHookHandler, preHandlerAsyncHookHandler, RouteOptions } from 'fastify'
import { Type, type TSchema } from '@sinclair/typebox'
import { IdempotencyKeySchema, idempotencyErrors } from '../../../schemas/common.js'
import type { StoredAnswer } from '../../services/idempotency.js'
import '../../lib/route-config.js'

interface Claim { scope: string, key: string, claimId: string }

declare module 'fastify' {
  interface FastifyRequest { idempotencyClaim: Claim | null }
}

const HEADER = 'idempotency-key'
/** The answer's own headers a replay repeats; the rest (request id, rate limit, cache-control) are the replay's. */
const REPLAYED_HEADERS = ['location', 'etag']
/**
 * Response fields that only the one answer creating them may show: an operation whose success
 * answer has one is never stored (and so ignores the key), whatever its config says.
 */
const SECRET_FIELDS = new Set(['accessToken', 'refreshToken', 'mfaToken', 'token', 'secret', 'recoveryCodes', 'otpauthUrl', 'qrSvg', 'ticket'])

type Schema = Record<string, unknown>

/** The first secret field a schema can answer, following $ref to the shared components. */
function secretFieldOf (schema: unknown, resolve: (id: string) => unknown, seen = new Set<unknown>()): string | undefined {
  if (!schema || typeof schema !== 'object' || seen.has(schema)) return undefined
  seen.add(schema)
  const s = schema as Schema
  if (typeof s.$ref === 'string') return secretFieldOf(resolve(s.$ref.split('#')[0]), resolve, seen)
  for (const [name, property] of Object.entries((s.properties ?? {}) as Schema)) {
    if (SECRET_FIELDS.has(name)) return name
    const found = secretFieldOf(property, resolve, seen)
    if (found) return found
  }
  const nested = [s.anyOf, s.oneOf, s.allOf].flatMap(list => Array.isArray(list) ? list : []).concat([s.items, s.additionalProperties])
  for (const sub of nested) {
    const found = secretFieldOf(sub, resolve, seen)
    if (found) return found
  }
  return undefined
}

const isSuccess = (status: string) => /^2/.test(status)

/** The route's schema with the key documented (and validated): the header, 400/409/422, and Idempotent-Replayed on what a replay can answer. */
function documented (schema: NonNullable<RouteOptions['schema']>): RouteOptions['schema'] {
  const headers = (schema.headers ?? Type.Object({})) as Schema
  const responses: Record<string, TSchema> = { ...(schema.response as Record<string, TSchema>), ...idempotencyErrors() }
  for (const [status, response] of Object.entries(responses)) {
    if (Number(status) >= 500) continue
    responses[status] = { ...response, headers: { ...(response.headers as Schema), 'Idempotent-Replayed': {} } }
  }
  return {
    ...schema,
    headers: { ...headers, properties: { ...(headers.properties as Schema), [HEADER]: Type.Optional(IdempotencyKeySchema) } },
    response: responses
  }
}

function withRequestId (body: string, requestId: string) {
  const envelope = JSON.parse(body) as { error?: { requestId?: string } }
  if (envelope.error) envelope.error.requestId = requestId
  return JSON.stringify(envelope)
}

function replay (request: FastifyRequest, reply: FastifyReply, answer: StoredAnswer) {
  reply.code(answer.statusCode).headers(answer.headers).header('idempotent-replayed', 'true')
  if (answer.body === null || answer.body === '') return reply.send(answer.body)
  // An error envelope names the request that answers it: the replay's, as X-Request-Id says.
  const body = answer.statusCode >= 400 ? withRequestId(answer.body, request.id) : answer.body
  return reply.type('application/json; charset=utf-8').send(body)
}

/**
 * Idempotency-Key on every POST under /api/v1 (the contract's "Conventions, added"), chosen per
 * route as it is added: routes with `config.idempotency: false` (they issue or end tokens) and
 * routes whose success answer carries a secret are left alone; all others, new ones included,
 * honour the key. The claim runs last in preHandler, after authenticate and authorize, so the
 * caller is known and a refused request holds no key; the answer is stored in onSend, first of
 * the route's onSend hooks, so it is the serialized body and not yet compressed.
 */
export default fp(async function idempotency (fastify) {
  const service = fastify.idempotencyService
  fastify.decorateRequest('idempotencyClaim', null)
  const resolve = (id: string) => fastify.getSchema(id)

  const claim: preHandlerAsyncHookHandler = async function (request, reply) {
    const key = request.headers[HEADER]
    if (typeof key !== 'string' || request.method !== 'POST') return
    const scope = request.actor ? `user:${request.actor.id}` : `route:${request.method} ${request.routeOptions.url}`
    const outcome = await service.begin(scope, key, service.requestHash(request.method, request.url, request.body))
    if (outcome.replay) return replay(request, reply, outcome.replay)
    request.idempotencyClaim = { scope, key, claimId: outcome.claimId }
  }

  const store: onSendAsyncHookHandler = async function (request, reply, payload) {
    const held = request.idempotencyClaim
    if (!held) return payload
    request.idempotencyClaim = null
    try {
      // A 5xx (and anything not a serialized body) is not kept: the key is free for a retry.
      if (reply.statusCode >= 500 || (payload != null && typeof payload !== 'string')) {
        await service.release(held.scope, held.key, held.claimId)
        return payload
      }
      const headers: Record<string, string> = {}
      for (const name of REPLAYED_HEADERS) {
        const value = reply.getHeader(name)
        if (value !== undefined) headers[name] = String(value)
      }
      const kept = await service.complete(held.scope, held.key, held.claimId, { statusCode: reply.statusCode, body: (payload as string | null) ?? null, headers })
      if (!kept) request.log.warn('the Idempotency-Key claim was lost before the answer was stored')
    } catch (err) {
      // The work is done: its answer still goes out. The key stays claimed until its lease ends.
      request.log.error({ err }, 'storing the answer of an Idempotency-Key failed')
    }
    return payload
  }

  // Should an answer never reach onSend, the key is not left claimed until its lease ends.
  const releaseUnsent: onResponseAsyncHookHandler = async function (request) {
    const held = request.idempotencyClaim
    if (!held) return
    request.idempotencyClaim = null
    await service.release(held.scope, held.key, held.claimId).catch(err => request.log.error({ err }, 'releasing an Idempotency-Key failed'))
  }

  fastify.addHook('onRoute', route => {
    if (![route.method].flat().includes('POST') || !route.url.startsWith('/api/v1/') || route.config?.idempotency === false) return
    const responses = Object.entries((route.schema?.response ?? {}) as Record<string, unknown>)
    if (responses.some(([status, schema]) => isSuccess(status) && secretFieldOf(schema, resolve))) return
    route.schema = documented(route.schema ?? {})
    route.preHandler = [route.preHandler ?? []].flat().concat(claim)
    route.onSend = [store, ...[route.onSend ?? []].flat()]
    route.onResponse = [route.onResponse ?? []].flat().concat(releaseUnsent)
  })
}, { name: 'idempotency', dependencies: ['services'] })

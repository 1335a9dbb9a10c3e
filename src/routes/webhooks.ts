import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema } from '../../schemas/common.js'
import {
  DeliveryListQuerySchema, DeliveryListResponseSchema, DeliveryParamsSchema, DeliveryResponseSchema, WebhookCreateSchema,
  WebhookListResponseSchema, WebhookPatchSchema, WebhookResponseSchema, WebhookWithSecretResponseSchema
} from '../../schemas/webhook.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
const tags = ['webhooks']

const webhooksRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, webhooksService } = fastify
  fastify.addHook('onRequest', authenticate)
  fastify.addHook('preHandler', authorize('webhooks:manage'))

  fastify.post('/', {
    schema: {
      operationId: 'createWebhook',
      tags,
      summary: 'Register a webhook; the answer carries its signing secret, shown only here',
      description: 'Needs webhooks:manage. Every event whose type is in events (or every event, with *) is POSTed to url, signed per Standard Webhooks ' +
        '(webhook-id, webhook-timestamp, webhook-signature). A URL whose host resolves to a loopback, private or link-local address is 400 unless WEBHOOK_ALLOW_PRIVATE=true.',
      security,
      body: WebhookCreateSchema,
      response: { 201: WebhookWithSecretResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async (request, reply) => {
    reply.code(201)
    return { success: true as const, data: await webhooksService.create(contextOf(request), request.body) }
  })

  fastify.get('/', {
    schema: {
      operationId: 'listWebhooks',
      tags,
      summary: 'List webhooks (newest first, at most 100)',
      description: 'Needs webhooks:manage. Secrets are never listed.',
      security,
      response: { 200: WebhookListResponseSchema, ...errors(401, 403, 429) }
    }
  }, async () => ({ success: true as const, data: await webhooksService.list() }))

  fastify.get('/:id', {
    schema: {
      operationId: 'getWebhook',
      tags,
      summary: 'Get a webhook',
      description: 'Needs webhooks:manage. Without its secret.',
      security,
      params: IdParamsSchema,
      response: { 200: WebhookResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await webhooksService.get(request.params.id) }))

  fastify.patch('/:id', {
    schema: {
      operationId: 'updateWebhook',
      tags,
      summary: 'Change a webhook\'s url, events, description or active flag',
      description: 'Needs webhooks:manage. A merge patch, as application/json or application/merge-patch+json. A new url is checked as at creation (400). ' +
        'An inactive webhook gets no new deliveries and its pending ones fail.',
      consumes: ['application/json', 'application/merge-patch+json'],
      security,
      params: IdParamsSchema,
      body: WebhookPatchSchema,
      response: { 200: WebhookResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await webhooksService.update(contextOf(request), request.params.id, request.body) }))

  fastify.delete('/:id', {
    schema: {
      operationId: 'deleteWebhook',
      tags,
      summary: 'Delete a webhook and its delivery log',
      description: 'Needs webhooks:manage.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 429) }
    }
  }, async (request, reply) => {
    await webhooksService.remove(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })

  fastify.post('/:id/rotate-secret', {
    schema: {
      operationId: 'rotateWebhookSecret',
      tags,
      summary: 'Replace a webhook\'s signing secret; the answer carries the new one, shown only here',
      description: 'Needs webhooks:manage. The new secret signs from now on; the previous one also signs (a second v1 signature) for WEBHOOK_SECRET_GRACE (24 h).',
      security,
      params: IdParamsSchema,
      response: { 200: WebhookWithSecretResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await webhooksService.rotateSecret(contextOf(request), request.params.id) }))

  fastify.get('/:id/deliveries', {
    schema: {
      operationId: 'listWebhookDeliveries',
      tags,
      summary: 'A webhook\'s delivery log, newest first (keyset paging)',
      description: 'Needs webhooks:manage. Page on with the nextCursor of the previous page.',
      security,
      params: IdParamsSchema,
      querystring: DeliveryListQuerySchema,
      response: { 200: DeliveryListResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, ...await webhooksService.deliveries(request.params.id, request.query) }))

  fastify.post('/:id/deliveries/:deliveryId/retry', {
    schema: {
      operationId: 'retryWebhookDelivery',
      tags,
      summary: 'Attempt a delivery again now',
      description: 'Needs webhooks:manage. A succeeded or failed delivery becomes pending and is attempted shortly (202); one already pending is made due now.',
      security,
      params: DeliveryParamsSchema,
      response: { 202: DeliveryResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async (request, reply) => {
    reply.code(202)
    return { success: true as const, data: await webhooksService.retry(request.params.id, request.params.deliveryId) }
  })
}

export default webhooksRoutes

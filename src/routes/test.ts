import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../schemas/common.js'
import { CapturedEmailsQuerySchema, CapturedEmailsResponseSchema } from '../../schemas/test.js'

/**
 * Affordances for test pipelines, registered only with TEST_ENDPOINTS=true (never in production,
 * see config.ts). Reading an email hands out its token, so it takes users:write, which can
 * already set any user's password and email.
 */
const testRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, emailDelivery } = fastify

  fastify.get('/emails', {
    onRequest: authenticate,
    preHandler: authorize('users:write'),
    schema: {
      operationId: 'listTestEmails',
      tags: ['test'],
      summary: 'The emails sent to an address, newest first, tokens included (only with TEST_ENDPOINTS=true)',
      description: 'For contract and load test pipelines: the emails the service queued for an address, sent or not, with the token each carries, so a test can verify an email or reset a password without a mailbox. Served only when TEST_ENDPOINTS=true, which production refuses. Needs users:write, which can already set any user\'s password and email.',
      security: [{ bearerAuth: [] }],
      querystring: CapturedEmailsQuerySchema,
      response: { 200: CapturedEmailsResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => ({ success: true as const, data: await emailDelivery.listTo(request.query.to, request.query.limit) }))
}

export default testRoutes

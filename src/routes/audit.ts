import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../schemas/common.js'
import { AuditListQuerySchema, AuditListResponseSchema } from '../../schemas/audit.js'
import { ACCESS } from '../services/context.js'

const auditRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, auditService } = fastify

  fastify.get('/', {
    onRequest: authenticate,
    preHandler: authorize(ACCESS.readAudit),
    schema: {
      operationId: 'listAuditLogs',
      tags: ['audit'],
      summary: 'The audit trail, newest first (keyset paging)',
      description: 'Needs audit:read. Filters combine; from is inclusive and to exclusive. Page on with the nextCursor of the previous page, ' +
        'which only works with the same filters. changes never holds a password, hash or token.',
      security: [{ bearerAuth: [] }],
      querystring: AuditListQuerySchema,
      response: { 200: AuditListResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const { data, pagination } = await auditService.list(request.query, request.actor?.id ?? null)
    return { success: true as const, data, pagination }
  })
}

export default auditRoutes

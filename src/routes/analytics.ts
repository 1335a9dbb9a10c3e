import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../schemas/common.js'
import { AnalyticsSummaryQuerySchema, AnalyticsSummaryResponseSchema, MAX_ANALYTICS_RANGE_DAYS, type AnalyticsSummaryQuery } from '../../schemas/analytics.js'

const analyticsRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, analyticsService } = fastify

  fastify.get('/summary', {
    onRequest: authenticate,
    preHandler: authorize('analytics:read'),
    schema: {
      operationId: 'getAnalyticsSummary',
      tags: ['analytics'],
      summary: 'User totals and sign-up and login figures per day, week or month',
      description: 'Needs analytics:read. totals are the users table now; series has one bucket per interval overlapping [from, to) ' +
        '(UTC), computed from the audit trail (a bucket wholly in the range is computed once, 10 minutes after it ends, then stored). ' +
        'from after to, or a range longer than ' + MAX_ANALYTICS_RANGE_DAYS + ' days, is 400.',
      security: [{ bearerAuth: [] }],
      querystring: AnalyticsSummaryQuerySchema,
      response: { 200: AnalyticsSummaryResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const data = await analyticsService.summary(request.query as AnalyticsSummaryQuery)
    return { success: true as const, data }
  })
}

export default analyticsRoutes

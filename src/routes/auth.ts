import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../../schemas/common.js'
import { LoginSchema, MeResponseSchema, TokenPairResponseSchema } from '../../schemas/auth.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]

const authRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authService } = fastify
  // Token-bearing answers must never be stored by a browser or a proxy.
  fastify.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'no-store') })

  fastify.post('/login', {
    schema: {
      operationId: 'login',
      tags: ['auth'],
      summary: 'Log in with email and password',
      body: LoginSchema,
      response: { 200: TokenPairResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const pair = await authService.login(contextOf(request), request.body.email, request.body.password)
    return { success: true as const, data: pair }
  })

  fastify.get('/me', {
    onRequest: fastify.authenticate,
    schema: {
      operationId: 'getMe',
      tags: ['auth'],
      summary: 'The caller, with its permissions',
      security,
      response: { 200: MeResponseSchema, ...errors(401, 429) }
    }
  }, async request => {
    const actor = request.actor!
    return { success: true as const, data: await authService.me(actor.id, actor.permissions) }
  })
}

export default authRoutes

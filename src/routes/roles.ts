import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema, WithHeaders } from '../../schemas/common.js'
import { RoleInputSchema, RoleListResponseSchema, RoleResponseSchema } from '../../schemas/role.js'
import { ACCESS, contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]

const rolesRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, rolesService } = fastify
  fastify.addHook('onRequest', authenticate)
  fastify.addHook('preHandler', authorize(ACCESS.manageRoles))

  fastify.get('/', {
    schema: {
      operationId: 'listRoles',
      tags: ['roles'],
      summary: 'List roles',
      description: 'Needs roles:manage. Every role, built-in ones included.',
      security,
      response: { 200: RoleListResponseSchema, ...errors(401, 403, 429) }
    }
  }, async () => ({ success: true as const, data: await rolesService.list() }))

  fastify.post('/', {
    schema: {
      operationId: 'createRole',
      tags: ['roles'],
      summary: 'Create a role',
      description: 'Needs roles:manage. A name already taken is 409 CONFLICT.',
      security,
      body: RoleInputSchema,
      response: { 201: WithHeaders(RoleResponseSchema, 'Location'), ...errors(400, 401, 403, 409, 429) }
    }
  }, async (request, reply) => {
    const role = await rolesService.create(contextOf(request), request.body)
    reply.code(201).header('location', `/api/v1/roles/${role.id}`)
    return { success: true as const, data: role }
  })

  fastify.get('/:id', {
    schema: {
      operationId: 'getRole',
      tags: ['roles'],
      summary: 'Get a role',
      description: 'Needs roles:manage.',
      security,
      params: IdParamsSchema,
      response: { 200: RoleResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await rolesService.get(request.params.id) }))

  fastify.put('/:id', {
    schema: {
      operationId: 'replaceRole',
      tags: ['roles'],
      summary: 'Replace a role (name, description, permissions); built-in roles are fixed (409)',
      description: 'Needs roles:manage. A name another role has is 409 CONFLICT, and so is any change to a built-in role.',
      security,
      params: IdParamsSchema,
      body: RoleInputSchema,
      response: { 200: RoleResponseSchema, ...errors(400, 401, 403, 404, 409, 429) }
    }
  }, async request => ({ success: true as const, data: await rolesService.replace(contextOf(request), request.params.id, request.body) }))

  fastify.delete('/:id', {
    schema: {
      operationId: 'deleteRole',
      tags: ['roles'],
      summary: 'Delete a role; built-in roles and roles that users hold cannot be deleted (409)',
      description: 'Needs roles:manage. Remove the role from its users first (PUT /api/v1/users/{id}/roles).',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 409, 429) }
    }
  }, async (request, reply) => {
    await rolesService.remove(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })
}

export default rolesRoutes

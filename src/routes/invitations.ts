import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema } from '../../schemas/common.js'
import { InvitationCreateSchema, InvitationListQuerySchema, InvitationListResponseSchema, InvitationResponseSchema } from '../../schemas/invitation.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
const tags = ['invitations']

/** Invitations by a caller with users:write; they are accepted anonymously at /api/v1/auth/invitations/accept. */
const invitationsRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, invitationsService } = fastify
  fastify.addHook('onRequest', authenticate)

  fastify.post('/', {
    // An invitation cannot invalidate anyone's access token.
    config: { keepsAuthState: true },
    preHandler: authorize('users:write'),
    schema: {
      operationId: 'createInvitation',
      tags,
      summary: 'Invite an email to create an account; queues the invitation email (valid 7 days)',
      description: 'Needs users:write, and roles:manage to set roles (403 otherwise; default roles [user]); an unknown role is 400. ' +
        'An email already in use by a user that is not deleted is 409 EMAIL_TAKEN. Inviting an email again revokes its earlier invitations.',
      security,
      body: InvitationCreateSchema,
      response: { 201: InvitationResponseSchema, ...errors(400, 401, 403, 409, 429) }
    }
  }, async (request, reply) => {
    const invitation = await invitationsService.create(contextOf(request), request.body)
    reply.code(201)
    return { success: true as const, data: invitation }
  })

  fastify.get('/', {
    preHandler: authorize('users:read'),
    schema: {
      operationId: 'listInvitations',
      tags,
      summary: 'List the outstanding invitations (not accepted, revoked or expired), newest first',
      description: 'Needs users:read. Keyset paging: pass nextCursor as cursor for the next page; a malformed cursor is 400.',
      security,
      querystring: InvitationListQuerySchema,
      response: { 200: InvitationListResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const { data, pagination } = await invitationsService.list(request.query)
    return { success: true as const, data, pagination }
  })

  fastify.delete('/:id', {
    config: { keepsAuthState: true },
    preHandler: authorize('users:write'),
    schema: {
      operationId: 'revokeInvitation',
      tags,
      summary: 'Revoke an outstanding invitation: its link stops working',
      description: 'Needs users:write. An unknown invitation, or one accepted, revoked or expired already, is 404.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 429) }
    }
  }, async (request, reply) => {
    await invitationsService.revoke(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })
}

export default invitationsRoutes

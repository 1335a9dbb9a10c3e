import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import { EmptyResponse, errors, IdParamsSchema, NotModifiedResponse, WithHeaders } from '../../schemas/common.js'
import {
  ProfileInputSchema, ProfileResponseSchema, UserCreateSchema, UserExportSchema, UserListQuerySchema, UserListResponseSchema,
  UserPatchSchema, UserReplaceSchema, UserResponseSchema, UserRolesSchema, type User, type UserListQuery
} from '../../schemas/user.js'
import { Success } from '../../schemas/common.js'
import { etagMatches, etagOf } from '../lib/etag.js'
import { ACCESS, contextOf } from '../services/context.js'
import { ConsentInputSchema, ConsentListResponseSchema, ConsentParamsSchema, ConsentResponseSchema } from '../../schemas/consent.js'
import { BULK_MAX, UserBatchResponseSchema, UserBatchSchema, UserImportResponseSchema, UserImportSchema } from '../../schemas/user-bulk.js'

/** A PATCH body is a JSON merge patch (RFC 7396), sent as either media type. */
const PATCH_MEDIA_TYPES = ['application/json', 'application/merge-patch+json']

const security = [{ bearerAuth: [] }]
// An ETag is 29 characters; 1024 leaves room for a list of them.
const IfMatchHeaders = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 1024, description: 'ETag from a GET; a stale one gives 412' })) })
const IfNoneMatchHeaders = Type.Object({ 'if-none-match': Type.Optional(Type.String({ maxLength: 1024, description: 'ETag from an earlier GET; 304 when it is still current' })) })

// A bulk request carries up to BULK_MAX users of a few KiB each (a profile's bio and avatar URL are up to 4 KiB).
const BULK_BODY_LIMIT = 8 * 1024 * 1024

/** The success answer of a write that returns the user, with the user's new ETag. */
function withEtag (reply: FastifyReply, user: User) {
  reply.header('etag', etagOf(user))
  return { success: true as const, data: user }
}

const usersRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authenticate, authorize, usersService } = fastify
  fastify.addHook('onRequest', authenticate)

  fastify.get('/', {
    preHandler: authorize(ACCESS.listUsers),
    schema: {
      operationId: 'listUsers',
      tags: ['users'],
      summary: 'List users (page or keyset paging)',
      description: 'Needs users:read. Without cursor, page mode with an exact total; with the nextCursor of a previous page, keyset mode ' +
        '(stable under inserts; page, total and totalPages are null). A cursor only works with the sort and filters it was made with. ' +
        'q searches (field terms, phrases, every term must match; fuzzy=true for typos; sort=relevance for best first), through trigram indexes.',
      security,
      querystring: UserListQuerySchema,
      response: { 200: UserListResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const { data, pagination } = await usersService.list(request.query as UserListQuery, request.actor?.id ?? null)
    return { success: true as const, data, pagination }
  })

  fastify.post('/', {
    // A new account cannot invalidate anyone's access token.
    config: { keepsAuthState: true },
    preHandler: authorize(ACCESS.createUser),
    schema: {
      operationId: 'createUser',
      tags: ['users'],
      summary: 'Create a user',
      description: 'Needs users:write, and roles:manage to set roles or status (403 otherwise). Defaults: status active, roles [user], ' +
        'email not verified. An email already in use by a user that is not deleted is 409 EMAIL_TAKEN.',
      security,
      body: UserCreateSchema,
      response: { 201: WithHeaders(UserResponseSchema, 'Location', 'ETag'), ...errors(400, 401, 403, 409, 429) }
    }
  }, async (request, reply) => {
    const user = await usersService.create(contextOf(request), request.body)
    reply.code(201).header('location', `/api/v1/users/${user.id}`).header('etag', etagOf(user))
    return { success: true as const, data: user }
  })

  fastify.post('/batch', {
    bodyLimit: BULK_BODY_LIMIT,
    schema: {
      operationId: 'batchUsers',
      tags: ['users'],
      summary: `Create, update, delete and restore up to ${BULK_MAX} users in one request`,
      description: 'Any authenticated caller: each operation is checked on its own, with the permission its single request needs ' +
        '(create: users:write; update: the user itself or users:write, a JSON merge patch as PATCH; delete: the user itself or users:delete; ' +
        'restore: users:delete), and its path id and body are checked against the single request\'s schemas. Not atomic (default): ' +
        'each operation runs in order in its own transaction and 200 lists, in order, the status (and user, or error) its single request ' +
        'would have answered. Atomic: one transaction; when any operation fails nothing is written and the answer is 400 BATCH_FAILED, ' +
        'one detail per failing operation (field operations[<index>]). More than 1000 operations is 400 VALIDATION_ERROR.',
      security,
      body: UserBatchSchema,
      response: {
        200: UserBatchResponseSchema,
        ...errors(400, 401, 429),
        400: { ...errors(400)[400], description: 'Invalid input (VALIDATION_ERROR), or an atomic batch that was not applied (BATCH_FAILED)' }
      }
    }
  }, async request => ({ success: true as const, data: { results: await fastify.usersBatchService.run(contextOf(request), request.body) } }))

  fastify.post('/import', {
    bodyLimit: BULK_BODY_LIMIT,
    preHandler: authorize('users:write'),
    schema: {
      operationId: 'importUsers',
      tags: ['users'],
      summary: `Import up to ${BULK_MAX} users from another system, keeping their password hashes`,
      description: 'Needs users:write, and roles:manage when any entry gives roles or status (403 otherwise). Each entry gives a password ' +
        '(checked by the password policy and hashed) or a passwordHash (bcrypt, scrypt or argon2 PHC, pbkdf2_sha256; kept as it is and ' +
        'replaced by an argon2id hash at the first login). One transaction per call. An email a live user holds is, by onConflict, ' +
        'listed in failed (fail, 409 EMAIL_TAKEN), counted in skipped (skip) or written over that user as a merge patch (update; a new ' +
        'password ends its logins). Entries that cannot be imported are listed in failed with their index; the others are imported. ' +
        'Each new user gets a user.created audit row; no verification email is sent (emailVerified says whether it is verified).',
      security,
      body: UserImportSchema,
      response: { 200: UserImportResponseSchema, ...errors(400, 401, 403, 409, 429) }
    }
  }, async request => ({ success: true as const, data: await fastify.userImportService.importUsers(contextOf(request), request.body) }))

  fastify.get('/:id', {
    preHandler: authorize(ACCESS.getUser),
    schema: {
      operationId: 'getUser',
      tags: ['users'],
      summary: 'Get a user',
      description: 'The user itself, or a caller with users:read. Unknown and soft-deleted users are 404. With AUDIT_DATA_ACCESS=true, ' +
        'a read of another user is audited as user.viewed (written within about a second, in a batch; an audit row, not an event).',
      security,
      params: IdParamsSchema,
      headers: IfNoneMatchHeaders,
      response: { 200: WithHeaders(UserResponseSchema, 'ETag'), 304: WithHeaders(NotModifiedResponse, 'ETag'), ...errors(400, 401, 403, 404, 429) }
    }
  }, async (request, reply) => {
    const { user, etag } = await usersService.get(request.params.id, contextOf(request))
    reply.header('etag', etag).header('cache-control', 'private, no-cache')
    if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send(null)
    return { success: true as const, data: user }
  })

  const updateResponses = { 200: WithHeaders(UserResponseSchema, 'ETag'), ...errors(400, 401, 403, 404, 409, 412, 429) }
  const updateDescription = 'The user itself, or a caller with users:write; roles and status need roles:manage (403 otherwise). ' +
    'With If-Match, a stale ETag is 412. A new email is unverified until confirmed, and a verification email is queued.'

  fastify.put('/:id', {
    preHandler: authorize(ACCESS.updateUser),
    schema: {
      operationId: 'replaceUser',
      tags: ['users'],
      summary: 'Replace a user (email, names and profile required)',
      description: updateDescription,
      security,
      params: IdParamsSchema,
      headers: IfMatchHeaders,
      body: UserReplaceSchema,
      response: updateResponses
    }
  }, async (request, reply) => {
    return withEtag(reply, await usersService.replace(contextOf(request), request.params.id, request.body, request.headers['if-match']))
  })

  fastify.patch('/:id', {
    preHandler: authorize(ACCESS.updateUser),
    schema: {
      operationId: 'updateUser',
      tags: ['users'],
      summary: 'Update a user partially (JSON merge patch)',
      description: `${updateDescription} Takes application/json or application/merge-patch+json.`,
      consumes: PATCH_MEDIA_TYPES,
      security,
      params: IdParamsSchema,
      headers: IfMatchHeaders,
      body: UserPatchSchema,
      response: updateResponses
    }
  }, async (request, reply) => {
    return withEtag(reply, await usersService.patch(contextOf(request), request.params.id, request.body, request.headers['if-match']))
  })

  fastify.delete('/:id', {
    preHandler: authorize(ACCESS.deleteUser),
    schema: {
      operationId: 'deleteUser',
      tags: ['users'],
      summary: 'Soft-delete a user and revoke its logins',
      description: 'The user itself, or a caller with users:delete. With If-Match, a stale ETag is 412; 409 when it would leave no active ' +
        'administrator. Its logins are revoked and its email may be registered again; POST /api/v1/users/{id}/restore brings it back.',
      security,
      params: IdParamsSchema,
      headers: IfMatchHeaders,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 409, 412, 429) }
    }
  }, async (request, reply) => {
    await usersService.remove(contextOf(request), request.params.id, request.headers['if-match'])
    return reply.code(204).send(null)
  })

  fastify.post('/:id/restore', {
    preHandler: authorize(ACCESS.restoreUser),
    schema: {
      operationId: 'restoreUser',
      tags: ['users'],
      summary: 'Restore a soft-deleted user',
      description: 'Needs users:delete. Restoring a user that is not deleted answers it as it is; 409 EMAIL_TAKEN when a live user has taken its email meanwhile.',
      security,
      params: IdParamsSchema,
      response: { 200: UserResponseSchema, ...errors(400, 401, 403, 404, 409, 429) }
    }
  }, async request => {
    const user = await usersService.restore(contextOf(request), request.params.id)
    return { success: true as const, data: user }
  })

  fastify.post('/:id/mfa/reset', {
    preHandler: authorize('users:write'),
    schema: {
      operationId: 'resetUserMfa',
      tags: ['users'],
      summary: "Remove a user's second factors (TOTP, recovery codes, passkeys) and revoke its logins",
      description: 'Needs users:write, and not on oneself (403: disable your own factors with a code instead). For a user who lost their ' +
        'authenticator: it logs in with its password alone afterwards. Unknown or deleted users are 404.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 429) }
    }
  }, async (request, reply) => {
    await fastify.mfaService.reset(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })

  fastify.put('/:id/roles', {
    preHandler: authorize(ACCESS.setUserRoles),
    schema: {
      operationId: 'setUserRoles',
      tags: ['users'],
      summary: 'Replace the roles of a user',
      description: 'Needs roles:manage. Every name must be an existing role (400 otherwise).',
      security,
      params: IdParamsSchema,
      body: UserRolesSchema,
      response: { 200: UserResponseSchema, ...errors(400, 401, 403, 404, 409, 429) }
    }
  }, async request => {
    const user = await usersService.setRoles(contextOf(request), request.params.id, request.body.roles)
    return { success: true as const, data: user }
  })

  fastify.get('/:id/profile', {
    preHandler: authorize('users:read', { self: true }),
    schema: {
      operationId: 'getUserProfile',
      tags: ['users'],
      summary: 'Get a user\'s profile',
      description: 'The user itself, or a caller with users:read.',
      security,
      params: IdParamsSchema,
      response: { 200: ProfileResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await usersService.getProfile(request.params.id) }))

  for (const method of ['put', 'patch'] as const) {
    fastify[method]('/:id/profile', {
      preHandler: authorize('users:write', { self: true }),
      schema: {
        operationId: method === 'put' ? 'replaceUserProfile' : 'updateUserProfile',
        tags: ['users'],
        summary: method === 'put' ? 'Replace a user\'s profile (missing fields become null)' : 'Update a user\'s profile (merge patch)',
        description: 'The user itself, or a caller with users:write.',
        ...(method === 'patch' && { consumes: PATCH_MEDIA_TYPES }),
        security,
        params: IdParamsSchema,
        body: ProfileInputSchema,
        response: { 200: ProfileResponseSchema, ...errors(400, 401, 403, 404, 429) }
      }
    }, async request => ({
      success: true as const,
      data: await usersService.saveProfile(contextOf(request), request.params.id, request.body, method === 'put')
    }))
  }

  fastify.get('/:id/export', {
    preHandler: authorize('users:read', { self: true }),
    schema: {
      operationId: 'exportUser',
      tags: ['users'],
      summary: 'Export everything held about a user (GDPR access)',
      description: 'The user itself, or a caller with users:read: the user, profile, roles, logins, audit trail (its newest 10,000 entries), ' +
        'consent history, linked sign-in providers, passkeys (never key material) and invitations received or sent (never a token). ' +
        'Each export is audited as user.exported.',
      security,
      params: IdParamsSchema,
      response: { 200: Success(Type.Ref(UserExportSchema)), ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await usersService.exportData(contextOf(request), request.params.id) }))

  fastify.get('/:id/consents', {
    preHandler: authorize(ACCESS.readConsents),
    schema: {
      operationId: 'listUserConsents',
      tags: ['users'],
      summary: "A user's current consents",
      description: 'The user itself, or a caller with users:read. One entry per purpose of CONSENT_PURPOSES that has a recorded state ' +
        '(the latest change); a purpose never decided is not listed. The whole history is in the export.',
      security,
      params: IdParamsSchema,
      response: { 200: ConsentListResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({ success: true as const, data: await fastify.consentsService.list(request.params.id) }))

  fastify.put('/:id/consents/:purpose', {
    preHandler: authorize(ACCESS.changeConsents),
    schema: {
      operationId: 'setUserConsent',
      tags: ['users'],
      summary: "Grant or withdraw a user's consent to a purpose",
      description: 'The user itself, or a caller with users:write. Records a new state (the history is kept, append-only) and audits it ' +
        'as user.consent_changed; the same granted and version as the current state records nothing. A purpose outside ' +
        'CONSENT_PURPOSES is 400 VALIDATION_ERROR.',
      security,
      params: ConsentParamsSchema,
      body: ConsentInputSchema,
      response: { 200: ConsentResponseSchema, ...errors(400, 401, 403, 404, 429) }
    }
  }, async request => ({
    success: true as const,
    data: await fastify.consentsService.set(contextOf(request), request.params.id, request.params.purpose, request.body)
  }))

  fastify.post('/:id/erase', {
    preHandler: authorize('users:delete', { self: true }),
    schema: {
      operationId: 'eraseUser',
      tags: ['users'],
      summary: 'Irreversibly anonymise a user (GDPR erasure)',
      description: 'The user itself, or a caller with users:delete. The personal data is overwritten for good, the audit trail keeps its ' +
        'entries without PII, and the user is 404 from then on. 409 when it would leave no active administrator.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 403, 404, 409, 429) }
    }
  }, async (request, reply) => {
    await usersService.erase(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })
}

export default usersRoutes

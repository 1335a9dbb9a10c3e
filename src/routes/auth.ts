import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema, WithHeaders } from '../../schemas/common.js'
import {
  AcceptedResponseSchema, ChangePasswordSchema, ForgotPasswordSchema, LoginSchema, MeResponseSchema, RefreshTokenBodySchema,
  RegisterSchema, ResetPasswordSchema, SessionListResponseSchema, TokenPairResponseSchema, VerifyEmailSchema
} from '../../schemas/auth.js'
import { InvitationAcceptSchema } from '../../schemas/invitation.js'
import { UserResponseSchema } from '../../schemas/user.js'
import { LoginResponseSchema } from '../../schemas/mfa.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
/** Anonymous: no access token is read (the document's default is a Bearer token). */
const anonymous: typeof security = []
const tags = ['auth']
const AUTH_BUDGET = 'Rate limited by AUTH_RATE_LIMIT_MAX per client IP, counted for this route alone.'

const authRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authService, authenticate, invitationsService } = fastify
  // Token-bearing answers must never be stored by a browser or a proxy.
  fastify.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'no-store') })

  fastify.post('/register', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true },
    schema: {
      operationId: 'register',
      tags,
      summary: 'Create an account (role user, email not yet verified); queues a verification email',
      description: 'Anonymous. The password must meet the policy (400 with a detail for password); an email in use is 409 EMAIL_TAKEN. ' +
        'consents ({ <purpose>: <version> }) are recorded as granted with the account (user.consent_changed each); a purpose outside ' +
        `CONSENT_PURPOSES is 400 with a detail for consents.<purpose>. ${AUTH_BUDGET}`,
      security: anonymous,
      body: RegisterSchema,
      response: { 201: WithHeaders(UserResponseSchema, 'Location'), ...errors(400, 409, 429) }
    }
  }, async (request, reply) => {
    const user = await authService.register(contextOf(request), request.body)
    reply.code(201).header('location', `/api/v1/users/${user.id}`)
    return { success: true as const, data: user }
  })

  fastify.post('/login', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'login',
      tags,
      summary: 'Log in with email and password (with a second factor enrolled: the mfaToken for POST /auth/mfa/verify)',
      description: 'Anonymous. The answer is the token pair, or, when the user has a second factor enrolled, { mfaRequired: true, mfaToken, ' +
        'expiresIn, methods } to finish with POST /auth/mfa/verify. An unknown email, a wrong password and a suspended account are the same 401 INVALID_CREDENTIALS. After ' +
        'LOGIN_MAX_FAILURES failures within LOGIN_LOCK_WINDOW the account answers 429 with Retry-After until the window ends; ' +
        `an unverified account is 403 when REQUIRE_EMAIL_VERIFICATION is on. ${AUTH_BUDGET}`,
      security: anonymous,
      body: LoginSchema,
      response: { 200: LoginResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const pair = await authService.login(contextOf(request), request.body.email, request.body.password)
    return { success: true as const, data: pair }
  })

  fastify.post('/invitations/accept', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'acceptInvitation',
      tags,
      summary: 'Accept an invitation: set a password, become an active user with a verified email, and log in',
      description: 'Anonymous: the token from the invitation email is the credential (single use, 7 days). An unknown, spent, revoked or ' +
        'expired token is 400 INVALID_TOKEN; a password against the policy, or no name when the invitation has none, is 400 VALIDATION_ERROR ' +
        `(the token stays usable); an email taken since the invitation is 409 EMAIL_TAKEN. Answers as a password login does. ${AUTH_BUDGET}`,
      security: anonymous,
      body: InvitationAcceptSchema,
      response: { 201: TokenPairResponseSchema, ...errors(400, 409, 429) }
    }
  }, async (request, reply) => {
    const pair = await invitationsService.accept(contextOf(request), request.body)
    reply.code(201)
    return { success: true as const, data: pair }
  })

  fastify.post('/refresh', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'refreshTokens',
      tags,
      summary: 'Exchange a refresh token for a new pair; the old one is spent (presenting it again revokes the login)',
      description: 'Anonymous: the refresh token is the credential. A spent token is 401 TOKEN_REUSED and revokes every token of its login ' +
        `(unless it comes back within REFRESH_REUSE_GRACE, which answers as the rotation did). ${AUTH_BUDGET}`,
      security: anonymous,
      body: RefreshTokenBodySchema,
      response: { 200: TokenPairResponseSchema, ...errors(400, 401, 429) }
    }
  }, async request => {
    const pair = await authService.refresh(contextOf(request), request.body.refreshToken)
    return { success: true as const, data: pair }
  })

  fastify.post('/logout', {
    config: { idempotency: false },
    schema: {
      operationId: 'logout',
      tags,
      summary: 'End the login the refresh token belongs to (idempotent: an unknown token is also 204)',
      description: 'Anonymous: no access token needed. The refresh token and the access tokens of its login stop working.',
      security: anonymous,
      body: RefreshTokenBodySchema,
      response: { 204: EmptyResponse, ...errors(400, 429) }
    }
  }, async (request, reply) => {
    await authService.logout(contextOf(request), request.body.refreshToken)
    return reply.code(204).send(null)
  })

  fastify.post('/logout-all', {
    config: { idempotency: false },
    onRequest: authenticate,
    schema: {
      operationId: 'logoutAll',
      tags,
      summary: 'End every login of the caller',
      description: 'Any authenticated caller. Every refresh token of the caller is revoked, and access tokens issued before are refused from then on.',
      security,
      response: { 204: EmptyResponse, ...errors(400, 401, 429) }
    }
  }, async (request, reply) => {
    await authService.logoutAll(contextOf(request))
    return reply.code(204).send(null)
  })

  fastify.get('/me', {
    onRequest: authenticate,
    schema: {
      operationId: 'getMe',
      tags,
      summary: 'The caller, with its permissions',
      description: 'Any authenticated caller: itself as a user, plus the permissions its roles grant.',
      security,
      response: { 200: MeResponseSchema, ...errors(401, 429) }
    }
  }, async request => {
    const actor = request.actor!
    return { success: true as const, data: await authService.me(actor.id, actor.permissions) }
  })

  fastify.get('/sessions', {
    onRequest: authenticate,
    schema: {
      operationId: 'listSessions',
      tags,
      summary: "The caller's active logins",
      description: 'Any authenticated caller. current marks the login of the access token used.',
      security,
      response: { 200: SessionListResponseSchema, ...errors(401, 429) }
    }
  }, async request => {
    return { success: true as const, data: await authService.listSessions(contextOf(request)) }
  })

  fastify.delete('/sessions/:id', {
    onRequest: authenticate,
    schema: {
      operationId: 'revokeSession',
      tags,
      summary: "End one of the caller's logins (anyone else's is 404)",
      description: 'Any authenticated caller, for its own logins only: an unknown login or another user\'s is 404.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 404, 429) }
    }
  }, async (request, reply) => {
    await authService.revokeSession(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })

  fastify.post('/password/forgot', {
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'forgotPassword',
      tags,
      summary: 'Request a password reset email; the answer is the same whether or not the account exists',
      description: `Anonymous. The reset link's token is single use and expires after 1 h. ${AUTH_BUDGET}`,
      security: anonymous,
      body: ForgotPasswordSchema,
      response: { 202: AcceptedResponseSchema, ...errors(400, 429) }
    }
  }, async (request, reply) => {
    await authService.forgotPassword(request.body.email)
    reply.code(202)
    return { success: true as const, data: null, message: 'If an account uses this address, a password reset email is on its way' }
  })

  fastify.post('/password/reset', {
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'resetPassword',
      tags,
      summary: 'Set a new password with a reset token (single use, 1 h); every login of the user is revoked',
      description: 'Anonymous: the token is the credential. An unknown, spent or expired token is 400 INVALID_TOKEN; a password against the ' +
        `policy is 400 with a detail for password and leaves the token usable. ${AUTH_BUDGET}`,
      security: anonymous,
      body: ResetPasswordSchema,
      response: { 204: EmptyResponse, ...errors(400, 429) }
    }
  }, async (request, reply) => {
    await authService.resetPassword(contextOf(request), request.body.token, request.body.password)
    return reply.code(204).send(null)
  })

  fastify.post('/password/change', {
    onRequest: authenticate,
    schema: {
      operationId: 'changePassword',
      tags,
      summary: "Change the caller's password; every other login is revoked",
      description: 'Any authenticated caller. A wrong currentPassword is 401 INVALID_CREDENTIALS; a new password against the policy is 400.',
      security,
      body: ChangePasswordSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 429) }
    }
  }, async (request, reply) => {
    await authService.changePassword(contextOf(request), request.body.currentPassword, request.body.newPassword)
    return reply.code(204).send(null)
  })

  fastify.post('/email/verify', {
    config: { rateLimitBudget: 'auth' },
    schema: {
      operationId: 'verifyEmail',
      tags,
      summary: 'Verify an email address with the token from the verification email (single use, 24 h)',
      description: `Anonymous: the token is the credential. An unknown, spent or expired token is 400 INVALID_TOKEN. ${AUTH_BUDGET}`,
      security: anonymous,
      body: VerifyEmailSchema,
      response: { 204: EmptyResponse, ...errors(400, 429) }
    }
  }, async (request, reply) => {
    await authService.verifyEmail(contextOf(request), request.body.token)
    return reply.code(204).send(null)
  })

  fastify.post('/email/verify/resend', {
    onRequest: authenticate,
    schema: {
      operationId: 'resendVerificationEmail',
      tags,
      summary: 'Queue a new verification email (nothing is sent when the email is already verified)',
      description: 'Any authenticated caller; the answer does not say whether an email was queued.',
      security,
      response: { 202: AcceptedResponseSchema, ...errors(400, 401, 429) }
    }
  }, async (request, reply) => {
    await authService.resendVerification(contextOf(request))
    reply.code(202)
    return { success: true as const, data: null, message: 'A verification email is on its way unless the address is already verified' }
  })
}

export default authRoutes

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors, IdParamsSchema } from '../../schemas/common.js'
import { LoginResponseSchema } from '../../schemas/mfa.js'
import {
  LoginOptionsBodySchema, LoginOptionsResponseSchema, LoginVerifyBodySchema, PasskeyResponseSchema,
  RegisterVerifyBodySchema, RegistrationOptionsResponseSchema
} from '../../schemas/passkeys.js'
import { validationError } from '../errors.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
/** Anonymous: no access token is read (the document's default is a Bearer token). */
const anonymous: typeof security = []
const tags = ['auth']
const AUTH_BUDGET = 'Rate limited by AUTH_RATE_LIMIT_MAX per client IP, counted for this route alone.'
const CEREMONY = 'The challenge lives 5 minutes and is accepted once, on any instance; the origin must be one of WEBAUTHN_ORIGINS and the RP ID WEBAUTHN_RP_ID.'

/** Passkeys (WebAuthn): registering and removing the caller's, and the passwordless login. */
const passkeyRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { passkeysService, authenticate } = fastify
  // Challenges and token-bearing answers must never be stored by a browser or a proxy.
  fastify.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'no-store') })

  fastify.post('/register/options', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'passkeyRegistrationOptions',
      tags,
      summary: 'Start registering a passkey: creation options for navigator.credentials.create',
      description: `Any authenticated caller, for itself. A discoverable credential with user verification is asked for; the caller's passkeys are excluded. ${CEREMONY} At most 20 passkeys per user (409 beyond).`,
      security,
      response: { 200: RegistrationOptionsResponseSchema, ...errors(400, 401, 409, 429) }
    }
  }, async request => {
    return { success: true as const, data: await passkeysService.registrationOptions(contextOf(request)) }
  })

  fastify.post('/register/verify', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'passkeyRegister',
      tags,
      summary: 'Finish registering a passkey with the authenticator\'s attestation',
      description: `Any authenticated caller. An attestation that does not verify (unknown, spent or expired challenge, wrong origin or RP ID, no user verification) is 400 with a detail for response; a credential already registered is 409. Audited as auth.passkey_added. ${CEREMONY}`,
      security,
      body: RegisterVerifyBodySchema,
      response: { 201: PasskeyResponseSchema, ...errors(400, 401, 409, 429) }
    }
  }, async (request, reply) => {
    const passkey = await passkeysService.register(contextOf(request), request.body.response, request.body.name)
    reply.code(201)
    return { success: true as const, data: passkey }
  })

  fastify.delete('/:id', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'deletePasskey',
      tags,
      summary: 'Remove one of the caller\'s passkeys (anyone else\'s is 404)',
      description: 'Any authenticated caller, for its own passkeys only: an unknown passkey or another user\'s is 404. Audited as auth.passkey_removed.',
      security,
      params: IdParamsSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 404, 429) }
    }
  }, async (request, reply) => {
    await passkeysService.remove(contextOf(request), request.params.id)
    return reply.code(204).send(null)
  })

  fastify.post('/login/options', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'passkeyLoginOptions',
      tags,
      summary: 'Start a passwordless login: request options for navigator.credentials.get',
      description: 'Anonymous. With { mfaToken } (a password login answered mfaRequired), options for that user\'s passkeys as the second factor: ' +
        'send the assertion to /auth/mfa/verify as { mfaToken, passkey }; an unknown, spent or expired mfaToken is 401. Without an email, any discoverable credential may answer; with one, allowCredentials lists that account\'s ' +
        'passkeys, and an email of no account (or of one without passkeys) gets options of the same shape, so the answer does not tell ' +
        `whether the account exists. Send challengeId back with the assertion. ${CEREMONY} ${AUTH_BUDGET}`,
      security: anonymous,
      body: LoginOptionsBodySchema,
      response: { 200: LoginOptionsResponseSchema, ...errors(400, 401, 429) }
    }
  }, async request => {
    const { email, mfaToken } = request.body
    if (email !== undefined && mfaToken !== undefined) throw validationError('Send email or mfaToken, not both', [{ field: 'mfaToken', message: 'not with email' }])
    return { success: true as const, data: mfaToken === undefined ? await passkeysService.loginOptions(email) : await passkeysService.secondFactorOptions(mfaToken) }
  })

  fastify.post('/login/verify', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'passkeyLogin',
      tags,
      summary: 'Finish a passwordless login with a passkey assertion: the login answer (token pair and user)',
      description: 'Anonymous: the assertion is the credential. An assertion that fails (unknown, spent or expired challenge, unknown passkey, ' +
        'bad signature, wrong origin or RP ID, a signature counter that did not increase, a suspended account) is 401 INVALID_CREDENTIALS, ' +
        'audited as auth.login_failed; an unverified account is 403 when REQUIRE_EMAIL_VERIFICATION is on. The access token carries ' +
        `amr ["passkey"]; audited as auth.login with method passkey. ${CEREMONY} ${AUTH_BUDGET}`,
      security: anonymous,
      body: LoginVerifyBodySchema,
      response: { 200: LoginResponseSchema, ...errors(400, 401, 403, 429) }
    }
  }, async request => {
    const pair = await passkeysService.login(contextOf(request), request.body.challengeId, request.body.response)
    return { success: true as const, data: pair }
  })
}

export default passkeyRoutes

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EmptyResponse, errors } from '../../schemas/common.js'
import { TokenPairResponseSchema } from '../../schemas/auth.js'
import {
  MfaCodeSchema, MfaStatusResponseSchema, MfaVerifySchema, RecoveryCodesResponseSchema, TotpCodeSchema, TotpSetupResponseSchema
} from '../../schemas/mfa.js'
import { contextOf } from '../services/context.js'

const security = [{ bearerAuth: [] }]
const anonymous: typeof security = []
const tags = ['auth']
const LOCKOUT = 'A wrong code is 401 INVALID_MFA_CODE and counts toward the account lockout (LOGIN_MAX_FAILURES within LOGIN_LOCK_WINDOW); ' +
  'a locked account is 429 with Retry-After whatever the code. A TOTP code is accepted once.'

/** Second factors: TOTP enrolment, recovery codes, and the second step of a login (under /api/v1/auth/mfa). */
const mfaRoutes: FastifyPluginAsyncTypebox = async function (fastify) {
  const { authService, mfaService, authenticate } = fastify
  // Secrets, recovery codes and tokens: never stored by a browser or a proxy.
  fastify.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'no-store') })

  fastify.get('/', {
    onRequest: authenticate,
    schema: {
      operationId: 'getMfaStatus',
      tags,
      summary: "The caller's second factors",
      description: 'Any authenticated caller: whether TOTP is enabled, how many recovery codes are left, and its passkeys. No secret is ever returned.',
      security,
      response: { 200: MfaStatusResponseSchema, ...errors(401, 429) }
    }
  }, async request => {
    return { success: true as const, data: await mfaService.status(contextOf(request)) }
  })

  fastify.post('/totp/setup', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'setupTotp',
      tags,
      summary: 'Start TOTP enrolment: a new secret, its otpauth URI and QR code (not active until confirmed)',
      description: 'Any authenticated caller. RFC 6238: SHA-1, 6 digits, 30 s. Calling it again replaces a secret not yet confirmed; ' +
        'with TOTP already enabled it is 409 CONFLICT (disable it first). This is the only answer that carries the secret.',
      security,
      response: { 200: TotpSetupResponseSchema, ...errors(400, 401, 409, 429) }
    }
  }, async request => {
    return { success: true as const, data: await mfaService.setupTotp(contextOf(request)) }
  })

  fastify.post('/totp/confirm', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'confirmTotp',
      tags,
      summary: 'Activate TOTP with a current code; answers 10 single-use recovery codes, shown this once',
      description: 'Any authenticated caller, after POST /auth/mfa/totp/setup. A wrong code is 400 VALIDATION_ERROR (field code); ' +
        'no setup to confirm, or TOTP already enabled, is 409 CONFLICT. The recovery codes are stored hashed.',
      security,
      body: TotpCodeSchema,
      response: { 200: RecoveryCodesResponseSchema, ...errors(400, 401, 409, 429) }
    }
  }, async request => {
    return { success: true as const, data: await mfaService.confirmTotp(contextOf(request), request.body.code) }
  })

  fastify.post('/totp/disable', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'disableTotp',
      tags,
      summary: 'Turn TOTP off (with a TOTP or a recovery code); the recovery codes go with it',
      description: `Any authenticated caller with TOTP enabled (otherwise 409 CONFLICT). ${LOCKOUT}`,
      security,
      body: MfaCodeSchema,
      response: { 204: EmptyResponse, ...errors(400, 401, 409, 429) }
    }
  }, async (request, reply) => {
    await mfaService.disableTotp(contextOf(request), request.body.code)
    return reply.code(204).send(null)
  })

  fastify.post('/recovery-codes', {
    onRequest: authenticate,
    config: { keepsAuthState: true },
    schema: {
      operationId: 'regenerateRecoveryCodes',
      tags,
      summary: 'A new set of 10 recovery codes (with a TOTP or a recovery code); the old set stops working',
      description: `Any authenticated caller with TOTP enabled (otherwise 409 CONFLICT). The codes are shown this once. ${LOCKOUT}`,
      security,
      body: MfaCodeSchema,
      response: { 200: RecoveryCodesResponseSchema, ...errors(400, 401, 409, 429) }
    }
  }, async request => {
    return { success: true as const, data: await mfaService.regenerateRecoveryCodes(contextOf(request), request.body.code) }
  })

  fastify.post('/verify', {
    config: { rateLimitBudget: 'auth', keepsAuthState: true, idempotency: false },
    schema: {
      operationId: 'verifyMfa',
      tags,
      summary: 'The second step of a login: the mfaToken with a TOTP code or a recovery code; answers the token pair',
      description: 'Anonymous: the mfaToken from POST /auth/login is the credential (single use, 5 min). Send exactly one of code and ' +
        'recoveryCode (otherwise 400). An unknown, spent or expired mfaToken is 401 UNAUTHORIZED; log in again. After a wrong code the ' +
        `same mfaToken may be tried again. ${LOCKOUT} The access token carries amr ["pwd","otp"]. Rate limited by AUTH_RATE_LIMIT_MAX per client IP.`,
      security: anonymous,
      body: MfaVerifySchema,
      response: { 200: TokenPairResponseSchema, ...errors(400, 401, 429) }
    }
  }, async request => {
    return { success: true as const, data: await authService.verifyMfa(contextOf(request), request.body) }
  })
}

export default mfaRoutes

import fp from 'fastify-plugin'
import { createPasswordHasher, createPasswordPolicy, type PasswordHasher } from '../../lib/password.js'
import { createBreachCheck } from '../../lib/breached-passwords.js'
import { createAuthService, type AuthService } from '../../services/auth.js'
import { createUsersService, type UsersService } from '../../services/users.js'
import { bootstrapAdmin } from '../../services/bootstrap.js'
import { createResilientAttemptStore } from '../../lib/login-attempts.js'
import { createResilientTtlCache } from '../../lib/ttl-cache.js'
import type { TokenPair } from '../../../schemas/auth.js'
import { createLoginThrottle } from '../../services/login-throttle.js'
import { createRolesService, type RolesService } from '../../services/roles.js'
import { createAuditService, type AuditService } from '../../services/audit.js'
import { createAnalyticsService, type AnalyticsService } from '../../services/analytics.js'
import { createPasskeysService, type PasskeysService } from '../../services/passkeys.js'
import { createOidcService, type OidcService } from '../../services/oidc.js'
import { createOidcClients } from '../../lib/oidc-client.js'
import { createInvitationsService, type InvitationsService } from '../../services/invitations.js'
import { createMfaService, type MfaService } from '../../services/mfa.js'
import { createIdempotencyService, type IdempotencyService } from '../../services/idempotency.js'
import { createEventsService, type EventsService } from '../../services/events.js'
import { createUsersBatchService, type UsersBatchService } from '../../services/users-batch.js'
import { createUserImportService, type UserImportService } from '../../services/user-import.js'
import { createConsentsService, type ConsentsService } from '../../services/consents.js'
import { createAccessAudit, type AccessAudit } from '../../services/access-audit.js'
import { bodyCheck } from '../../lib/validation.js'
import { IdParamsSchema } from '../../../schemas/common.js'
import { UserCreateSchema, UserPatchSchema } from '../../../schemas/user.js'

declare module 'fastify' {
  interface FastifyInstance {
    hasher: PasswordHasher
    usersService: UsersService
    usersBatchService: UsersBatchService
    userImportService: UserImportService
    authService: AuthService
    mfaService: MfaService
    rolesService: RolesService
    auditService: AuditService
    analyticsService: AnalyticsService
    passkeysService: PasskeysService
    oidcService: OidcService
    invitationsService: InvitationsService
    idempotencyService: IdempotencyService
    eventsService: EventsService
    consentsService: ConsentsService
    accessAudit: AccessAudit
  }
}

export default fp(async function services (fastify) {
  const { config } = fastify
  const { db, compiled } = fastify.database
  const hasher = createPasswordHasher(config.argon2MemoryKiB)
  fastify.decorate('hasher', hasher)
  const passwordPolicy = createPasswordPolicy(config.passwordBreachCheckUrl
    ? createBreachCheck({ url: config.passwordBreachCheckUrl, log: fastify.log, metrics: fastify.appMetrics })
    : undefined)
  // onClose hooks run in reverse order: the rows it holds are written before the database closes.
  const accessAudit = createAccessAudit({ db, enabled: config.auditDataAccess, flushMs: config.accessAuditFlushMs, log: fastify.log })
  fastify.decorate('accessAudit', accessAudit)
  fastify.addHook('onClose', async () => accessAudit.close())
  const consentsService = createConsentsService({ db, config })
  fastify.decorate('consentsService', consentsService)
  const usersService = createUsersService({ db, compiled, reads: fastify.lagTolerantReads, config, hasher, emails: fastify.emailOutbox, passwordPolicy, accessAudit })
  fastify.decorate('usersService', usersService)
  // Each operation of a batch is checked by the schemas of its single request, with the routes' own compiler.
  const check = (schema: Parameters<typeof bodyCheck>[1]) => bodyCheck(fastify.validatorCompiler as Parameters<typeof bodyCheck>[0], schema)
  fastify.decorate('usersBatchService', createUsersBatchService({
    db, users: usersService, checks: { create: check(UserCreateSchema), patch: check(UserPatchSchema), id: check(IdParamsSchema) }
  }))
  fastify.decorate('userImportService', createUserImportService({ db, hasher, passwordPolicy, users: usersService }))
  const loginGuard = createLoginThrottle(createResilientAttemptStore(fastify.redis, fastify.log), config)
  // Shared through Redis, so a replay within REFRESH_REUSE_GRACE is forgiven on whichever instance it reaches.
  const refreshGraceCache = createResilientTtlCache<TokenPair>(fastify.redis, 'refresh-grace:', fastify.log)
  // The same lockout counts wrong passwords and wrong second-factor codes.
  const mfaService = createMfaService({
    db,
    compiled,
    config,
    loginGuard,
    metrics: fastify.appMetrics,
    // passkeysService needs authService, which needs this: bound when called, after all three exist.
    passkeys: { verifyAssertion: (by, response) => passkeysService.verifyAssertion(by, response), list: userId => passkeysService.list(userId) }
  })
  fastify.decorate('mfaService', mfaService)
  const authService = createAuthService({ db, compiled, config, hasher, usersService, consentsService, emails: fastify.emailOutbox, mfaService, signAccessToken: fastify.signAccessToken, loginGuard, refreshGraceCache, metrics: fastify.appMetrics, passwordPolicy })
  fastify.decorate('authService', authService)
  fastify.decorate('invitationsService', createInvitationsService({ db, hasher, passwordPolicy, emails: fastify.emailOutbox, usersService, authService }))
  const passkeysService = createPasskeysService({ db, compiled, config, authService, metrics: fastify.appMetrics })
  fastify.decorate('passkeysService', passkeysService)
  // Providers are discovered on first use, not here: one that is down must not stop the start.
  const oidcClients = createOidcClients(config.oidcProviders, config.publicUrl)
  fastify.decorate('oidcService', createOidcService({ db, config, clients: oidcClients, authService, emails: fastify.emailOutbox }))
  fastify.decorate('rolesService', createRolesService({ db }))
  fastify.decorate('auditService', createAuditService({ reads: fastify.lagTolerantReads }))
  fastify.decorate('idempotencyService', createIdempotencyService({ db }))
  fastify.decorate('eventsService', createEventsService({ db }))
  fastify.decorate('analyticsService', createAnalyticsService({ db }))
  if (config.adminEmail && config.adminPassword) {
    await bootstrapAdmin(db, hasher, config.adminEmail, config.adminPassword, fastify.log)
  }
}, { name: 'services', dependencies: ['config', 'database', 'auth', 'redis', 'jobs', 'email-delivery', 'metrics'] })

import fp from 'fastify-plugin'
import { createPasswordHasher, type PasswordHasher } from '../../lib/password.js'
import { createAuthService, type AuthService } from '../../services/auth.js'
import { createUsersService, type UsersService } from '../../services/users.js'
import { bootstrapAdmin } from '../../services/bootstrap.js'
import { createResilientAttemptStore } from '../../lib/login-attempts.js'
import { createResilientTtlCache } from '../../lib/ttl-cache.js'
import type { TokenPair } from '../../../schemas/auth.js'
import { createLoginThrottle } from '../../services/login-throttle.js'
import { createRolesService, type RolesService } from '../../services/roles.js'
import { createAuditService, type AuditService } from '../../services/audit.js'

declare module 'fastify' {
  interface FastifyInstance {
    hasher: PasswordHasher
    usersService: UsersService
    authService: AuthService
    rolesService: RolesService
    auditService: AuditService
  }
}

export default fp(async function services (fastify) {
  const { config } = fastify
  const { db, compiled } = fastify.database
  const hasher = createPasswordHasher(config.argon2MemoryKiB)
  fastify.decorate('hasher', hasher)
  const usersService = createUsersService({ db, compiled, reads: fastify.lagTolerantReads, config, hasher, emails: fastify.emailOutbox })
  fastify.decorate('usersService', usersService)
  const loginGuard = createLoginThrottle(createResilientAttemptStore(fastify.redis, fastify.log), config)
  // Shared through Redis, so a replay within REFRESH_REUSE_GRACE is forgiven on whichever instance it reaches.
  const refreshGraceCache = createResilientTtlCache<TokenPair>(fastify.redis, 'refresh-grace:', fastify.log)
  fastify.decorate('authService', createAuthService({ db, compiled, config, hasher, usersService, emails: fastify.emailOutbox, signAccessToken: fastify.signAccessToken, loginGuard, refreshGraceCache, metrics: fastify.appMetrics }))
  fastify.decorate('rolesService', createRolesService({ db }))
  fastify.decorate('auditService', createAuditService({ reads: fastify.lagTolerantReads }))
  if (config.adminEmail && config.adminPassword) {
    await bootstrapAdmin(db, hasher, config.adminEmail, config.adminPassword, fastify.log)
  }
}, { name: 'services', dependencies: ['config', 'database', 'auth', 'redis', 'email-delivery', 'metrics'] })

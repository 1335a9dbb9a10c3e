import fp from 'fastify-plugin'
import { createPasswordHasher, type PasswordHasher } from '../../lib/password.js'
import { createAuthService, type AuthService } from '../../services/auth.js'
import { createUsersService, type UsersService } from '../../services/users.js'
import { bootstrapAdmin } from '../../services/bootstrap.js'

declare module 'fastify' {
  interface FastifyInstance {
    hasher: PasswordHasher
    usersService: UsersService
    authService: AuthService
  }
}

export default fp(async function services (fastify) {
  const { config } = fastify
  const db = fastify.database.db
  const hasher = createPasswordHasher(config.argon2MemoryKiB)
  fastify.decorate('hasher', hasher)
  fastify.decorate('usersService', createUsersService({ db, config, hasher }))
  fastify.decorate('authService', createAuthService({ db, config, hasher, signAccessToken: fastify.signAccessToken }))
  if (config.adminEmail && config.adminPassword) {
    await bootstrapAdmin(db, hasher, config.adminEmail, config.adminPassword, fastify.log)
  }
}, { name: 'services', dependencies: ['config', 'database', 'auth'] })

import type { FastifyBaseLogger } from 'fastify'
import type { DB } from '../db/connect.js'
import type { PasswordHasher } from '../lib/password.js'
import { passwordProblems } from '../lib/password.js'
import { insertAudit } from '../repositories/audit.js'
import * as users from '../repositories/users.js'
import { liveAdminExists, lockBootstrap } from '../repositories/administrators.js'

/** Creates the configured admin when no live admin exists (once, even with several instances starting). */
export async function bootstrapAdmin (db: DB, hasher: PasswordHasher, email: string, password: string, log: FastifyBaseLogger) {
  const problems = passwordProblems(password, email)
  if (problems.length > 0) throw new Error(`ADMIN_PASSWORD ${problems.map(p => p.message).join(', ')}`)
  const passwordHash = await hasher.hash(password)
  await db.transaction().execute(async trx => {
    await lockBootstrap(trx)
    if (await liveAdminExists(trx)) return
    const context = { actorId: null, ip: null, userAgent: null, requestId: 'bootstrap' }
    const [adminRole] = await users.findRolesByName(trx, ['admin'])
    const existing = await users.findCredentialsByEmail(trx, email)
    if (existing) {
      // Promote an existing account only when it proves to be the operator's: same password.
      if (existing.passwordHash === null || !await hasher.verify(existing.passwordHash, password)) {
        log.warn('ADMIN_EMAIL belongs to an existing user whose password differs from ADMIN_PASSWORD; not promoting it')
        return
      }
      await users.addUserRole(trx, existing.id, adminRole.id)
      await insertAudit(trx, context, { action: 'user.roles_changed', userId: existing.id, changes: { roles: { added: ['admin'] } } })
      log.info('bootstrap admin promoted')
      return
    }
    const { id } = await users.insertUserWithRoles(trx, { email, passwordHash, firstName: 'Admin', lastName: 'User', status: 'active', emailVerified: true }, ['admin'])
    await insertAudit(trx, context, { action: 'user.created', userId: id, changes: { email, roles: ['admin'], bootstrap: true } })
    log.info('bootstrap admin created')
  })
}

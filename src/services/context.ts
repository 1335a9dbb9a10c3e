import type { FastifyRequest } from 'fastify'
import type { AuditContext } from '../repositories/audit.js'
import { forbidden, unauthorized } from '../errors.js'
import type { Permission } from '../../schemas/auth.js'

export interface Actor {
  id: string
  sessionId: string | null
  permissions: ReadonlySet<string>
}

/** Who asks, and from where: what services need for permission checks and audit rows. */
export interface RequestContext extends AuditContext {
  actor: Actor | null
}

export function contextOf (request: FastifyRequest): RequestContext {
  const actor = request.actor ?? null
  return {
    actor,
    actorId: actor?.id ?? null,
    ip: request.ip ?? null,
    userAgent: request.headers['user-agent'] ?? null,
    requestId: request.id
  }
}

export const can = (ctx: RequestContext, permission: string) => ctx.actor?.permissions.has(permission) ?? false

/** What an operation needs: a permission, which the user itself does not need when `self` (on itself). */
export interface Access { permission: Permission, self?: boolean }

/**
 * Who may call each operation that both REST and GraphQL serve. The routes' authorize hooks and
 * the GraphQL resolvers both read it here, so the two APIs cannot drift apart.
 */
export const ACCESS = {
  listUsers: { permission: 'users:read' },
  getUser: { permission: 'users:read', self: true },
  createUser: { permission: 'users:write' },
  updateUser: { permission: 'users:write', self: true },
  deleteUser: { permission: 'users:delete', self: true },
  restoreUser: { permission: 'users:delete' },
  setUserRoles: { permission: 'roles:manage' },
  readConsents: { permission: 'users:read', self: true },
  changeConsents: { permission: 'users:write', self: true },
  manageRoles: { permission: 'roles:manage' },
  readAudit: { permission: 'audit:read' }
} as const satisfies Record<string, Access>

/**
 * The one permission check: 401 without a caller, otherwise the caller needs the permission,
 * unless the access allows `self` and the target is the caller itself (403 otherwise).
 */
export function authorizeActor (actor: Actor | null, access: Access, targetId?: string): Actor {
  if (!actor) throw unauthorized()
  if (actor.permissions.has(access.permission)) return actor
  if (access.self && targetId === actor.id) return actor
  throw forbidden()
}

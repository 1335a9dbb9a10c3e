import type { FastifyRequest } from 'fastify'
import type { AuditContext } from '../repositories/audit.js'

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

/**
 * The access rule of every route on a user: the permission, or (where the route lets a user act on
 * itself) being that user. `authorize` applies it to a request, the batch to each operation.
 */
export const permits = (actor: Actor, permission: string, selfId?: string) => actor.permissions.has(permission) || (selfId !== undefined && selfId === actor.id)

import type { DB } from '../db/connect.js'
import { emailTaken, forbidden, invalidToken, notFound, validationError, type ErrorDetail } from '../errors.js'
import { decodeCursor, encodeCursor, listFingerprint } from '../lib/cursor.js'
import type { PasswordHasher, PasswordPolicy } from '../lib/password.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import { insertAudit } from '../repositories/audit.js'
import * as invitations from '../repositories/invitations.js'
import { findCredentialsByEmail } from '../repositories/users.js'
import type { TokenPair } from '../../schemas/auth.js'
import type { AuditPagination } from '../../schemas/audit.js'
import type { Invitation, InvitationAccept, InvitationCreate, InvitationListQuery } from '../../schemas/invitation.js'
import type { AuthService } from './auth.js'
import { can, type RequestContext } from './context.js'
import type { EmailOutbox } from './email.js'
import type { UsersService } from './users.js'

export const INVITATION_TTL_MS = 7 * 24 * 3600_000

export interface InvitationsServiceDeps {
  db: DB
  hasher: PasswordHasher
  passwordPolicy: PasswordPolicy
  emails: EmailOutbox
  usersService: UsersService
  authService: AuthService
}

const toInvitation = (row: { id: string, email: string, roles: string[], expiresAt: Date, createdAt: Date }): Invitation => ({
  id: row.id, email: row.email, roles: row.roles, expiresAt: row.expiresAt.toISOString(), createdAt: row.createdAt.toISOString()
})

/**
 * Invitations: a caller with users:write invites an email (with roles, given roles:manage); the
 * invitation email carries a single-use token, valid 7 days, stored hashed. Accepting it with a
 * password makes an active user whose email is verified (the token proved the mailbox) and logs
 * it in. Inviting an email again revokes its earlier invitations, so only the newest link works.
 */
export function createInvitationsService ({ db, hasher, passwordPolicy, emails, usersService, authService }: InvitationsServiceDeps) {
  return {
    async create (ctx: RequestContext, body: InvitationCreate): Promise<Invitation> {
      if (body.roles !== undefined && !can(ctx, 'roles:manage')) throw forbidden('Only a caller with roles:manage may set roles')
      const email = body.email.toLowerCase()
      const token = randomToken()
      return db.transaction().execute(async trx => {
        // Checked again when the invitation is accepted: the unique index is the last word.
        if (await findCredentialsByEmail(trx, email)) throw emailTaken()
        const roleIds = await usersService.resolveRoles(trx, body.roles ?? ['user'])
        const revoked = await invitations.revokeInvitationsOf(trx, email)
        const id = await invitations.insertInvitation(trx, {
          email, firstName: body.firstName ?? null, lastName: body.lastName ?? null, tokenHash: hashToken(token), invitedBy: ctx.actorId, expiresAt: new Date(Date.now() + INVITATION_TTL_MS)
        }, roleIds)
        await emails.queue(trx, email, 'invitation', { token, invitationId: id })
        const invitation = toInvitation((await invitations.findInvitation(trx, id))!)
        await insertAudit(trx, ctx, { action: 'invitation.created', userId: null, changes: { invitationId: id, email, roles: invitation.roles, ...(revoked.length ? { revokedInvitations: revoked } : {}) } })
        return invitation
      })
    },

    async list (query: InvitationListQuery): Promise<{ data: Invitation[], pagination: AuditPagination }> {
      const fingerprint = listFingerprint(['invitations'])
      let after: { createdAt: Date, id: string } | undefined
      if (query.cursor) {
        const position = decodeCursor(query.cursor, fingerprint)
        const createdAt = new Date(position.value)
        if (Number.isNaN(createdAt.getTime())) throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
        after = { createdAt, id: position.id }
      }
      const rows = await invitations.listOutstandingInvitations(db, after, query.limit + 1)
      const hasNext = rows.length > query.limit
      const page = rows.slice(0, query.limit).map(toInvitation)
      const last = page[page.length - 1]
      return {
        data: page,
        pagination: { limit: query.limit, hasNext, nextCursor: hasNext && last ? encodeCursor(fingerprint, { value: last.createdAt, id: last.id }) : null }
      }
    },

    async revoke (ctx: RequestContext, id: string) {
      await db.transaction().execute(async trx => {
        if (!await invitations.revokeInvitation(trx, id)) throw notFound('Invitation')
        await insertAudit(trx, ctx, { action: 'invitation.revoked', userId: null, changes: { invitationId: id } })
      })
    },

    /** Spends the token: a new active, verified user with the invited roles, logged in (201 the login answer). */
    async accept (ctx: RequestContext, body: InvitationAccept): Promise<TokenPair> {
      const tokenHash = hashToken(body.token)
      const found = await invitations.findOutstandingByToken(db, tokenHash)
      if (!found) throw invalidToken()
      const firstName = body.firstName ?? found.firstName
      const lastName = body.lastName ?? found.lastName
      const missing: ErrorDetail[] = []
      if (!firstName) missing.push({ field: 'firstName', message: 'is required (the invitation has none)' })
      if (!lastName) missing.push({ field: 'lastName', message: 'is required (the invitation has none)' })
      if (missing.length > 0) throw validationError('A name is required', missing)
      // Checked before the token is spent, so a rejected password leaves the link usable.
      await passwordPolicy(body.password, found.email)
      const passwordHash = await hasher.hash(body.password)
      // A taken email fails on the users' unique index (EMAIL_TAKEN) and leaves the invitation unspent.
      return db.transaction().execute(async trx => {
        // Locked, and still outstanding: of two acceptances of one token, the second finds nothing.
        const invitation = await invitations.findOutstandingByToken(trx, tokenHash, true)
        if (!invitation) throw invalidToken()
        const user = await usersService.insertAccount(trx, { ...ctx, actorId: null }, {
          email: invitation.email,
          passwordHash,
          firstName: firstName!,
          lastName: lastName!,
          status: 'active',
          emailVerified: true,
          roles: await invitations.invitationRoleNames(trx, invitation.id)
        }, { actorIsNewUser: true, auditNote: { invitationId: invitation.id } })
        await invitations.markInvitationAccepted(trx, invitation.id, user.id)
        await insertAudit(trx, { ...ctx, actorId: user.id }, { action: 'invitation.accepted', userId: user.id, changes: { invitationId: invitation.id } })
        return authService.startLogin(trx, ctx, user.id, { amr: ['pwd'], method: 'invitation' })
      })
    }
  }
}

export type InvitationsService = ReturnType<typeof createInvitationsService>

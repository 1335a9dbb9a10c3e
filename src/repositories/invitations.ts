import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/**
 * Invitations and the roles they give. Only a token's SHA-256 is stored. An invitation is
 * outstanding until it is accepted, revoked or expired; accepting locks its row, so a token is
 * spent once even when two requests race.
 */

/** The invitation's role names, sorted, as a column. */
const roleNames = sql<string[]>`coalesce((select array_agg(r.name order by r.name) from invitation_roles ir join roles r on r.id = ir.role_id where ir.invitation_id = i.id), '{}')`.as('roles')

const outstanding = sql<boolean>`i.accepted_at is null and i.revoked_at is null and i.expires_at > now()`

export async function insertInvitation (db: Executor, invitation: { email: string, firstName: string | null, lastName: string | null, tokenHash: string, invitedBy: string | null, expiresAt: Date }, roleIds: string[]) {
  const { id } = await db.insertInto('invitations').values(invitation).returning('id').executeTakeFirstOrThrow()
  if (roleIds.length > 0) await db.insertInto('invitationRoles').values(roleIds.map(roleId => ({ invitationId: id, roleId }))).execute()
  return id
}

export function findInvitation (db: Executor, id: string) {
  return db.selectFrom('invitations as i')
    .select(['i.id', 'i.email', 'i.expiresAt', 'i.createdAt', roleNames])
    .where('i.id', '=', id)
    .executeTakeFirst()
}

/** Outstanding invitations, newest first, after the keyset position when given. */
export function listOutstandingInvitations (db: Executor, after: { createdAt: Date, id: string } | undefined, limit: number) {
  let query = db.selectFrom('invitations as i')
    .select(['i.id', 'i.email', 'i.expiresAt', 'i.createdAt', roleNames])
    .where('i.acceptedAt', 'is', null)
    .where('i.revokedAt', 'is', null)
    .where('i.expiresAt', '>', sql<Date>`now()`)
  if (after) query = query.where(sql<boolean>`(i.created_at, i.id) < (${after.createdAt}, ${after.id})`)
  return query.orderBy('i.createdAt', 'desc').orderBy('i.id', 'desc').limit(limit).execute()
}

/** Revokes the outstanding invitations of an email (it is invited again); their ids. */
export async function revokeInvitationsOf (db: Executor, email: string) {
  const rows = await db.updateTable('invitations as i').set({ revokedAt: sql`now()` as any })
    .where('i.email', '=', email).where(outstanding).returning('i.id').execute()
  return rows.map(row => row.id)
}

/** Revokes one outstanding invitation; whether there was one. */
export async function revokeInvitation (db: Executor, id: string) {
  const row = await db.updateTable('invitations as i').set({ revokedAt: sql`now()` as any })
    .where('i.id', '=', id).where(outstanding).returning('i.email').executeTakeFirst()
  return row !== undefined
}

/**
 * The outstanding invitation a token belongs to. With lock, the row stays locked until the
 * transaction ends, and a concurrent acceptance that won makes it undefined; without, it is a
 * plain read (to check a password against its email before the transaction).
 */
export function findOutstandingByToken (db: Executor, tokenHash: string, lock = false) {
  const query = db.selectFrom('invitations as i')
    .select(['i.id', 'i.email', 'i.firstName', 'i.lastName'])
    .where('i.tokenHash', '=', tokenHash).where(outstanding)
  return (lock ? query.forUpdate() : query).executeTakeFirst()
}

/** The invitation's roles that still exist (a role deleted meanwhile is simply not given). */
export function invitationRoleNames (db: Executor, invitationId: string) {
  return db.selectFrom('invitationRoles as ir').innerJoin('roles as r', 'r.id', 'ir.roleId')
    .select('r.name').where('ir.invitationId', '=', invitationId).execute()
    .then(rows => rows.map(row => row.name))
}

export async function markInvitationAccepted (db: Executor, id: string, userId: string) {
  await db.updateTable('invitations').set({ acceptedAt: sql`now()` as any, acceptedBy: userId }).where('id', '=', id).execute()
}

/**
 * The invitations about a user (addressed to its email or accepted by it: received) and those it
 * sent, oldest first, without their token hashes: for a GDPR export.
 */
export function invitationsOfUser (db: Executor, userId: string, email: string, limit: number) {
  return db.selectFrom('invitations as i')
    .select([
      'i.id', 'i.email', 'i.firstName', 'i.lastName', 'i.createdAt', 'i.expiresAt', 'i.acceptedAt', 'i.revokedAt', roleNames,
      sql<'received' | 'sent'>`case when i.accepted_by = ${userId} or i.email = ${email} then 'received' else 'sent' end`.as('direction')
    ])
    .where(eb => eb.or([eb('i.acceptedBy', '=', userId), eb('i.email', '=', email), eb('i.invitedBy', '=', userId)]))
    .orderBy('i.createdAt').orderBy('i.id').limit(limit).execute()
}

/**
 * Erasure: the invitations addressed to the user or accepted by it go (their email and names are
 * its personal data), and the invitation.created audit rows and events lose the email they name.
 * Invitations it sent stay: they hold the invitees' data, and its id only points at the erased row.
 * Call inside the erasure's transaction (the audit trail's trigger reads app.audit_erase).
 */
export async function eraseInvitationsOf (trx: Executor, userId: string, email: string) {
  await trx.deleteFrom('invitations').where(eb => eb.or([eb('acceptedBy', '=', userId), eb('email', '=', email)])).execute()
  // The events first, found through their audit rows (by action, then by the events' unique id).
  await sql`update events set data = jsonb_set(data, '{changes}', (data->'changes') - 'email')
    where id in (select id from user_audit_log where action = 'invitation.created' and changes->>'email' = ${email})`.execute(trx)
  await sql`select set_config('app.audit_erase', 'on', true)`.execute(trx)
  await sql`update user_audit_log set changes = changes - 'email'
    where action = 'invitation.created' and changes->>'email' = ${email}`.execute(trx)
  await sql`select set_config('app.audit_erase', 'off', true)`.execute(trx)
}

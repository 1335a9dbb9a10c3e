import { sql, type Transaction } from 'kysely'
import type { Executor } from '../db/types.js'
import type { Database } from '../db/types.js'

/** Serialises every change that could leave no administrator (roles, status, deletion, role permissions). */
export async function lockAdministrators (trx: Transaction<Database>) {
  await sql`select pg_advisory_xact_lock(hashtext('user-management:administrators'))`.execute(trx)
}

/** The number of live, active users holding a role with roles:manage: the ones who can still administer. */
export async function countAdministrators (db: Executor) {
  const row = await db.selectFrom('users as u')
    .select(sql<number>`count(distinct u.id)::int`.as('count'))
    .innerJoin('userRoles as ur', 'ur.userId', 'u.id')
    .innerJoin('roles as r', 'r.id', 'ur.roleId')
    .where('u.deletedAt', 'is', null)
    .where('u.status', '=', 'active')
    .where(sql<boolean>`'roles:manage' = any(r.permissions)`)
    .executeTakeFirstOrThrow()
  return row.count
}

/** Serialises the start-up creation of the configured admin across instances starting together. */
export async function lockBootstrap (trx: Transaction<Database>) {
  await sql`select pg_advisory_xact_lock(hashtext('user-management:bootstrap-admin'))`.execute(trx)
}

/** Whether a live user holds the built-in admin role. */
export async function liveAdminExists (db: Executor) {
  const row = await db.selectFrom('users as u')
    .innerJoin('userRoles as ur', 'ur.userId', 'u.id')
    .innerJoin('roles as r', 'r.id', 'ur.roleId')
    .select('u.id').where('r.name', '=', 'admin').where('u.deletedAt', 'is', null).limit(1).executeTakeFirst()
  return row !== undefined
}

import { sql, type Transaction } from 'kysely'
import type { Database } from '../db/types.js'
import type { Executor } from '../db/types.js'

const COLUMNS = ['id', 'name', 'description', 'permissions', 'builtIn', 'createdAt', 'updatedAt'] as const

export interface RoleValues { name: string, description: string, permissions: string[] }

export function listRoles (db: Executor) {
  return db.selectFrom('roles').select(COLUMNS).orderBy('name').execute()
}

export function findRoleById (db: Executor, id: string) {
  return db.selectFrom('roles').select(COLUMNS).where('id', '=', id).executeTakeFirst()
}

export function findRoleByName (db: Executor, name: string) {
  return db.selectFrom('roles').select(['id']).where('name', '=', name).executeTakeFirst()
}

/** The role, locked for the rest of the transaction. */
export function lockRole (trx: Transaction<Database>, id: string) {
  return trx.selectFrom('roles').select(COLUMNS).where('id', '=', id).forUpdate().executeTakeFirst()
}

export function insertRole (db: Executor, role: RoleValues) {
  return db.insertInto('roles').values(role).returning(COLUMNS).executeTakeFirstOrThrow()
}

export function updateRole (db: Executor, id: string, role: RoleValues) {
  return db.updateTable('roles').set({ ...role, updatedAt: sql`now()` as any }).where('id', '=', id).returning(COLUMNS).executeTakeFirstOrThrow()
}

export async function deleteRole (db: Executor, id: string) {
  await db.deleteFrom('roles').where('id', '=', id).execute()
}

export async function countRoleHolders (db: Executor, roleId: string) {
  const row = await db.selectFrom('userRoles').select(sql<number>`count(*)::int`.as('count')).where('roleId', '=', roleId).executeTakeFirstOrThrow()
  return row.count
}

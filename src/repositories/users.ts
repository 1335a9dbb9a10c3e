import { sql, type Kysely, type Transaction } from 'kysely'
import { CompiledQueries } from '../db/compiled-queries.js'
import type { Database, NewUser, UserUpdate } from '../db/types.js'
import type { ProfileInput } from '../../schemas/user.js'

export type Executor = Kysely<Database> | Transaction<Database>

const rolesOfUser = sql<string[]>`array(select r.name from user_roles ur join roles r on r.id = ur.role_id where ur.user_id = u.id order by r.name)`

/** The columns that make up a user as returned, profile and role names included. */
export function selectUsers (db: Executor) {
  return db.selectFrom('users as u')
    .leftJoin('userProfiles as p', 'p.userId', 'u.id')
    .select([
      'u.id', 'u.email', 'u.firstName', 'u.lastName', 'u.status', 'u.emailVerified', 'u.lastLoginAt',
      'u.createdAt', 'u.updatedAt', 'u.deletedAt',
      'p.userId as profileUserId', 'p.bio', 'p.avatarUrl', 'p.phone', 'p.locale', 'p.timezone',
      rolesOfUser.as('roles')
    ])
}
export type UserWithRelationsRow = Awaited<ReturnType<ReturnType<typeof selectUsers>['executeTakeFirstOrThrow']>>

const compiled = new CompiledQueries()

/** The hottest read; compiled once per variant. */
export async function findUserById (db: Executor, id: string, includeDeleted = false): Promise<UserWithRelationsRow | undefined> {
  const result = await compiled.run(db, includeDeleted ? 'userById:all' : 'userById:live', [id], () => {
    const query = selectUsers(db).where('u.id', '=', id).where('u.erasedAt', 'is', null)
    return includeDeleted ? query : query.where('u.deletedAt', 'is', null)
  })
  return result.rows[0]
}

/** Locks the user's row for the rest of the transaction (read-check-write without lost updates). */
export function lockUser (trx: Transaction<Database>, id: string, includeDeleted = false) {
  let query = trx.selectFrom('users').select(['id', 'email', 'deletedAt']).where('id', '=', id).where('erasedAt', 'is', null)
  if (!includeDeleted) query = query.where('deletedAt', 'is', null)
  return query.forUpdate().executeTakeFirst()
}

export function findCredentialsByEmail (db: Executor, email: string) {
  return db.selectFrom('users')
    .select(['id', 'email', 'passwordHash', 'status', 'emailVerified'])
    .where(sql`lower(email)`, '=', email.toLowerCase())
    .where('deletedAt', 'is', null)
    .executeTakeFirst()
}

export function findPasswordHash (db: Executor, id: string) {
  return db.selectFrom('users').select(['passwordHash', 'email']).where('id', '=', id).where('deletedAt', 'is', null).executeTakeFirst()
}

export async function recordLogin (db: Executor, id: string) {
  await db.updateTable('users').set({ lastLoginAt: sql`now()` as any }).where('id', '=', id).execute()
}

export async function insertUser (db: Executor, user: NewUser) {
  const row = await db.insertInto('users').values(user).returning('id').executeTakeFirstOrThrow()
  return row.id
}

export async function updateUser (db: Executor, id: string, changes: UserUpdate) {
  await db.updateTable('users').set({ ...changes, updatedAt: sql`now()` as any }).where('id', '=', id).execute()
}

/** Writes a profile; with replace, fields not given become null. */
export async function saveProfile (db: Executor, userId: string, profile: ProfileInput, replace: boolean) {
  const fields = ['bio', 'avatarUrl', 'phone', 'locale', 'timezone'] as const
  const values: Record<string, string | null> = {}
  for (const field of fields) {
    if (profile[field] !== undefined) values[field] = profile[field]
    else if (replace) values[field] = null
  }
  await db.insertInto('userProfiles')
    .values({ userId, ...values })
    .onConflict(oc => Object.keys(values).length > 0
      ? oc.column('userId').doUpdateSet({ ...values, updatedAt: sql`now()` as any })
      : oc.column('userId').doNothing())
    .execute()
}

/** Erasure: the profile, logins, tokens and every email queued to the user (at this address or one it held before). */
export async function deletePersonalRecords (db: Executor, userId: string, email: string) {
  await db.deleteFrom('userProfiles').where('userId', '=', userId).execute()
  await db.deleteFrom('userSessions').where('userId', '=', userId).execute()
  await db.deleteFrom('passwordResetTokens').where('userId', '=', userId).execute()
  await db.deleteFrom('emailVerificationTokens').where('userId', '=', userId).execute()
  await db.deleteFrom('emailOutbox')
    .where(eb => eb.or([eb('toAddress', '=', email), eb(sql<string>`payload->>'userId'`, '=', userId)]))
    .execute()
}

export async function deleteProfile (db: Executor, userId: string) {
  await db.deleteFrom('userProfiles').where('userId', '=', userId).execute()
}

export async function replaceUserRoles (db: Executor, userId: string, roleIds: string[]) {
  await db.deleteFrom('userRoles').where('userId', '=', userId).execute()
  if (roleIds.length > 0) await db.insertInto('userRoles').values(roleIds.map(roleId => ({ userId, roleId }))).execute()
}

export function findRolesByName (db: Executor, names: string[]) {
  if (names.length === 0) return Promise.resolve([])
  return db.selectFrom('roles').select(['id', 'name', 'permissions']).where('name', 'in', names).execute()
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

export function escapeLike (text: string) {
  return text.replace(/[\\%_]/g, ch => `\\${ch}`)
}

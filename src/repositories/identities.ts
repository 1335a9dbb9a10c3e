import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/**
 * Sign-in with external OpenID Connect providers: identities linked to users, the authorization
 * requests in flight and the one-time login codes. Requests and codes are spent by a
 * DELETE ... RETURNING, so each works once even when two requests race.
 */

export function findIdentity (db: Executor, provider: string, subject: string) {
  return db.selectFrom('userIdentities as i')
    .innerJoin('users as u', 'u.id', 'i.userId')
    .select(['i.id', 'i.userId', 'u.status', sql<boolean>`u.deleted_at is null and u.erased_at is null`.as('live')])
    .where('i.provider', '=', provider)
    .where('i.subject', '=', subject)
    .executeTakeFirst()
}

export async function insertIdentity (db: Executor, identity: { userId: string, provider: string, subject: string, email: string | null }) {
  const row = await db.insertInto('userIdentities').values(identity).returning('id').executeTakeFirstOrThrow()
  return row.id
}

export function listIdentities (db: Executor, userId: string) {
  return db.selectFrom('userIdentities')
    .select(['id', 'provider', 'subject', 'email', 'createdAt'])
    .where('userId', '=', userId)
    .orderBy('createdAt').orderBy('id')
    .limit(100)
    .execute()
}

export async function countIdentities (db: Executor, userId: string) {
  const row = await db.selectFrom('userIdentities').select(sql<number>`count(*)::int`.as('count')).where('userId', '=', userId).executeTakeFirstOrThrow()
  return row.count
}

/** Removes one of the user's identities; what it was, or undefined when the user has none with that id. */
export function deleteIdentity (db: Executor, userId: string, id: string) {
  return db.deleteFrom('userIdentities').where('id', '=', id).where('userId', '=', userId)
    .returning(['provider', 'subject']).executeTakeFirst()
}

/** The live user with that email (lower-cased), whether its email is verified and whether it has a password. */
export function findUserByEmail (db: Executor, email: string) {
  return db.selectFrom('users')
    .select(['id', 'status', 'emailVerified', sql<boolean>`password_hash is not null`.as('hasPassword')])
    .where(sql`lower(email)`, '=', email.toLowerCase())
    .where('deletedAt', 'is', null)
    .executeTakeFirst()
}

/** Locks the live user's row and says whether it has a password: unlinking reads then removes without a race. */
export function lockSignInMethods (db: Executor, userId: string) {
  return db.selectFrom('users')
    .select(sql<boolean>`password_hash is not null`.as('hasPassword'))
    .where('id', '=', userId).where('deletedAt', 'is', null).where('erasedAt', 'is', null)
    .forUpdate()
    .executeTakeFirst()
}

export interface AuthRequest {
  stateHash: string
  browserHash: string
  provider: string
  nonce: string
  codeVerifier: string
  redirectUri: string
  expiresAt: Date
}

/** Stores a request in flight (retention drops the ones that expired). */
export async function insertAuthRequest (db: Executor, request: AuthRequest) {
  await db.insertInto('oidcAuthRequests').values(request).execute()
}

/** Spends the request of that state: it comes back once, and only while unexpired. */
export function spendAuthRequest (db: Executor, stateHash: string) {
  return db.deleteFrom('oidcAuthRequests')
    .where('stateHash', '=', stateHash)
    .where('expiresAt', '>', sql<Date>`now()`)
    .returning(['browserHash', 'provider', 'nonce', 'codeVerifier', 'redirectUri'])
    .executeTakeFirst()
}

export async function insertLoginCode (db: Executor, code: { codeHash: string, userId: string, provider: string, expiresAt: Date }) {
  await db.insertInto('oidcLoginCodes').values(code).execute()
}

export function spendLoginCode (db: Executor, codeHash: string) {
  return db.deleteFrom('oidcLoginCodes')
    .where('codeHash', '=', codeHash)
    .where('expiresAt', '>', sql<Date>`now()`)
    .returning(['userId', 'provider'])
    .executeTakeFirst()
}

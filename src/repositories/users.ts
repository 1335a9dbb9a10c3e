import { sql, type RawBuilder, type Transaction } from 'kysely'
import { PLANNED_PER_CALL, type CompiledQueries } from '../db/compiled-queries.js'
import type { Executor } from '../db/types.js'
import { deleteMfaRecords, MFA_STATE_COLUMNS } from './mfa.js'
import type { Database, NewUser, UserUpdate } from '../db/types.js'
import type { Profile, ProfileInput, UserStatus } from '../../schemas/user.js'
import { deleteUserPasskeys } from './passkeys.js'
import type { SearchField, SearchTerm } from '../lib/search-query.js'
import { piiKeyringOf } from '../db/camel-case.js'
import type { PiiKeyring } from '../lib/secret-box.js'
import { phoneIndexOf, piiSealer } from './pii.js'

export type { Executor }

/**
 * The columns that make up a user as returned. Role names and the profile come from the read
 * model on users (migration 003, kept by triggers), so a user is one row with no join.
 */
const USER_COLUMNS = [
  'u.id', 'u.email', 'u.firstName', 'u.lastName', 'u.status', 'u.emailVerified', 'u.lastLoginAt',
  'u.createdAt', 'u.updatedAt', 'u.deletedAt', 'u.roleNames as roles',
  sql<Profile | null>`u.profile`.as('profile')
] as const

export function selectUsers (db: Executor) {
  return db.selectFrom('users as u').select(USER_COLUMNS)
}

/** Marks a login on a user who may log in and returns it as selectUsers would, in one statement. */
export function recordLoginReturning (db: Executor, id: string, allowPending: boolean) {
  return db.updateTable('users as u').set({ lastLoginAt: sql`now()` as any })
    .where('u.id', '=', id).where('u.deletedAt', 'is', null).where('u.erasedAt', 'is', null)
    .where(sql<boolean>`(u.status = 'active' or (u.status = 'pending' and ${allowPending}::boolean))`)
    .returning(USER_COLUMNS)
}
export type UserWithRelationsRow = Awaited<ReturnType<ReturnType<typeof selectUsers>['executeTakeFirstOrThrow']>>

/** The hottest read; compiled once per variant. */
export async function findUserById (db: Executor, compiled: CompiledQueries, id: string, includeDeleted = false): Promise<UserWithRelationsRow | undefined> {
  const result = await compiled.run(db, includeDeleted ? 'userById:all' : 'userById:live', [id], () => {
    const query = selectUsers(db).where('u.id', '=', id).where('u.erasedAt', 'is', null)
    return includeDeleted ? query : query.where('u.deletedAt', 'is', null)
  })
  return result.rows[0]
}

export const USER_SORT_KEYS = ['createdAt', 'email', 'lastName'] as const
export type UserSortKey = typeof USER_SORT_KEYS[number]

export interface UserListFilter {
  /** A column, or relevance (with terms): the summed similarity of the terms, best first. */
  sort: UserSortKey | 'relevance'
  descending: boolean
  includeDeleted: boolean
  status?: UserStatus
  emailVerified?: boolean
  createdAfter?: Date
  createdBefore?: Date
  role?: string
  /** Search terms (src/lib/search-query.ts): every one must match. */
  terms?: SearchTerm[]
  /** Keyset paging: rows after this position in the sort order (for relevance, the score as text). */
  after?: { value: string | Date, id: string }
  limit: number
  offset: number
  /** Also count every row that matches the filters. */
  withTotal: boolean
}

/** What each kind of term searches; every expression has a trigram index (migrations 001 and 011). */
const SEARCHED: Record<SearchField, RawBuilder<string>> = {
  any: sql`(u.email || ' ' || u.first_name || ' ' || u.last_name)`,
  email: sql`u.email`,
  name: sql`(u.first_name || ' ' || u.last_name)`,
  phone: sql`(u.profile ->> 'phone')`
}

/** A swapped-letters match of a fuzzy word scores below the word as typed. */
const SWAP_WEIGHT = 0.9

const termKind = (term: SearchTerm) => term.swaps ? `${term.field}~` : term.field
const likePattern = (text: string) => '%' + escapeLike(text) + '%'
/** Text that a PostgreSQL regular expression matches literally. */
const regexLiteral = (text: string) => text.replace(/[\\.*+?^${}()|[\]]/g, '\\$&')

/**
 * A term as SQL: its condition (a case-insensitive substring; for a fuzzy word also its swaps, or a
 * trigram word similarity over FUZZY_WORD_SIMILARITY) and its score (trigram word similarity, 0 to 1),
 * each with its parameters in SQL order.
 */
function termSql (term: SearchTerm, pii: PiiKeyring | undefined) {
  const column = SEARCHED[term.field]
  const { text, swaps } = term
  if (term.field === 'phone' && pii) {
    // Sealed phones cannot be matched by substring: the whole number, by its blind index (under
    // every key of the ring, so a rotation under way misses nothing). One score for every match.
    const indexes = pii.phoneIndexes(text)
    return {
      condition: () => sql<boolean>`exists (select 1 from user_profiles p where p.user_id = u.id and p.phone_index = any(${indexes}::text[]))`,
      conditionParameters: [indexes],
      score: () => sql<number>`1`,
      scoreParameters: []
    }
  }
  if (!swaps) {
    const pattern = likePattern(text)
    return {
      condition: () => sql<boolean>`${column} ilike ${pattern}`,
      conditionParameters: [pattern],
      score: () => sql<number>`word_similarity(${text}, ${column})`,
      scoreParameters: [text]
    }
  }
  // One regular expression of the alternatives, not `ilike any(array)`: the planner estimates an
  // array of ten patterns at ten times the rows, and at 1,000,000 users it then walks the created_at
  // index filtering every row (440 ms) instead of probing the trigram index (11 ms).
  const alternatives = [text, ...swaps].map(regexLiteral).join('|')
  return {
    condition: () => sql<boolean>`(${column} ~* ${alternatives} or ${text} <% ${column})`,
    conditionParameters: [alternatives, text],
    score: () => sql<number>`greatest(word_similarity(${text}, ${column}), ${sql.lit(SWAP_WEIGHT)} * (select coalesce(max(word_similarity(s, ${column})), 0) from unnest(${swaps}::text[]) s))`,
    scoreParameters: [text, swaps]
  }
}

/**
 * A page of users and, when asked, the exact number that match. Each filter's SQL is built only
 * when its shape is first compiled; later calls gather only the parameters. Search terms are
 * sorted by kind, so that their shape (and the statements compiled) depends on their kinds only.
 */
export async function listUsers (db: Executor, compiled: CompiledQueries, filter: UserListFilter) {
  const pii = piiKeyringOf(db)
  const conditions: Array<() => RawBuilder<boolean>> = [() => sql`u.erased_at is null`]
  const filterParameters: unknown[] = []
  const where = (condition: () => RawBuilder<boolean>, ...values: unknown[]) => {
    conditions.push(condition)
    filterParameters.push(...values)
  }
  const { status, emailVerified, createdAfter, createdBefore, role, after } = filter
  if (!filter.includeDeleted) where(() => sql`u.deleted_at is null`)
  if (status !== undefined) where(() => sql`u.status = ${status}`, status)
  if (emailVerified !== undefined) where(() => sql`u.email_verified = ${emailVerified}`, emailVerified)
  if (createdAfter) where(() => sql`u.created_at > ${createdAfter}`, createdAfter)
  if (createdBefore) where(() => sql`u.created_at < ${createdBefore}`, createdBefore)
  if (role !== undefined) where(() => sql`u.role_names @> array[${role}]::text[]`, role)
  const terms = [...filter.terms ?? []].sort((a, b) => termKind(a).localeCompare(termKind(b))).map(term => termSql(term, pii))
  for (const term of terms) where(term.condition, ...term.conditionParameters)
  const filters = () => sql<boolean>`${sql.join(conditions.map(condition => condition()), sql` and `)}`
  const shapeKey = JSON.stringify([filter.sort, filter.descending, filter.includeDeleted, status !== undefined,
    emailVerified !== undefined, createdAfter !== undefined, createdBefore !== undefined, role !== undefined,
    [...filter.terms ?? []].map(termKind).sort(), after !== undefined])

  const byRelevance = filter.sort === 'relevance'
  // Rounded, so that the score a cursor carries (as text) compares equal to the row's own.
  const score = () => sql<string>`round((${sql.join(terms.map(term => term.score()), sql` + `)})::numeric, 6)`
  const scoreParameters = terms.flatMap(term => term.scoreParameters)
  const column = byRelevance ? score : () => sql.ref(`u.${filter.sort}`)
  const direction = filter.descending ? 'desc' : 'asc'
  const rowParameters = [...(byRelevance ? scoreParameters : []), ...filterParameters]
  let keyset = () => sql<boolean>`true`
  if (after) {
    const value = byRelevance ? sql`${after.value}::numeric` : sql`${after.value}`
    keyset = filter.descending
      ? () => sql`(${column()}, u.id) < (${value}, ${after.id})`
      : () => sql`(${column()}, u.id) > (${value}, ${after.id})`
    rowParameters.push(...(byRelevance ? scoreParameters : []), after.value, after.id)
  }
  rowParameters.push(filter.limit, filter.offset)
  const [rows, total] = await Promise.all([
    compiled.run(db, `rows:${shapeKey}`, rowParameters, () => selectUsers(db)
      .$if(terms.length > 0, query => query.modifyFront(PLANNED_PER_CALL))
      .$if(byRelevance, query => query.select(score().as('relevance')))
      .where(filters())
      .where(keyset())
      .orderBy(byRelevance ? sql`relevance` : column(), direction).orderBy('u.id', direction)
      .limit(filter.limit)
      .offset(filter.offset)).then(result => result.rows),
    filter.withTotal
      ? compiled.run(db, `count:${shapeKey}`, filterParameters, () => db.selectFrom('users as u')
        .$if(terms.length > 0, query => query.modifyFront(PLANNED_PER_CALL))
        .where(filters())
        .select(sql<number>`count(*)::int`.as('total'))).then(result => result.rows[0].total)
      : null
  ])
  return { rows, total }
}

/** Locks the user's row, live or soft-deleted (not erased), for the rest of the transaction (read-check-write without lost updates). */
export function lockUser (trx: Transaction<Database>, id: string) {
  return trx.selectFrom('users').select(['id', 'email', 'deletedAt']).where('id', '=', id).where('erasedAt', 'is', null)
    .forUpdate().executeTakeFirst()
}

/** The live user as returned, its row locked for the rest of the transaction: lock and read in one. */
export function lockLiveUser (trx: Transaction<Database>, id: string) {
  return selectUsers(trx).where('u.id', '=', id).where('u.erasedAt', 'is', null).where('u.deletedAt', 'is', null)
    .forUpdate().executeTakeFirst()
}

/** The live account an email names (any case), with what a sign-in judges. */
function selectCredentials (db: Executor, email: string) {
  return db.selectFrom('users as u')
    .select(['u.id', 'u.email', 'u.passwordHash', 'u.status', 'u.emailVerified'])
    .where(sql`lower(u.email)`, '=', email.toLowerCase())
    .where('u.deletedAt', 'is', null)
}

export function findCredentialsByEmail (db: Executor, email: string) {
  return selectCredentials(db, email).executeTakeFirst()
}

/**
 * The account a password login names with its second factors (as findMfaState reads them), in
 * one compiled statement: a login is then two round trips, this and startLogin's.
 */
export async function findLoginAccount (db: Executor, compiled: CompiledQueries, email: string) {
  const result = await compiled.run(db, 'loginAccount', [email.toLowerCase()], () => selectCredentials(db, email).select(MFA_STATE_COLUMNS))
  return result.rows[0]
}

export function findPasswordHash (db: Executor, id: string) {
  return db.selectFrom('users').select(['passwordHash', 'email']).where('id', '=', id).where('deletedAt', 'is', null).executeTakeFirst()
}

/**
 * A new user and its roles in one statement; returns its id and the names of the roles found, so
 * the caller can refuse unknown ones (and roll back). The read model's trigger fills role_names.
 */
export async function insertUserWithRoles (db: Executor, user: NewUser, roleNames: string[]) {
  // The row carries its role names as the read model's trigger will compute them (same catalogue,
  // same order), so the trigger finds nothing to change: no second version of the new row, with
  // every index of users written again (about 150 µs of database time a create).
  const withRoleNames = { ...user, roleNames: sql<string[]>`array(select name from roles where name = any(${roleNames}::text[]) order by name)` }
  const { rows: [row] } = await sql<{ id: string, roles: string[] }>`
    with u as (${db.insertInto('users').values(withRoleNames).returning('id')}),
    r as (
      insert into user_roles (user_id, role_id)
      select u.id, roles.id from u cross join roles where roles.name = any(${roleNames}::text[])
      returning role_id
    )
    select u.id, array(select roles.name from r join roles on roles.id = r.role_id) as roles from u`.execute(db)
  return row
}

/** Replaces the user's password hash only while it is still `current`; whether it did. */
export async function replacePasswordHash (db: Executor, id: string, current: string, next: string) {
  const result = await db.updateTable('users').set({ passwordHash: next })
    .where('id', '=', id).where('passwordHash', '=', current).executeTakeFirst()
  return result.numUpdatedRows > 0n
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
  const sealer = piiSealer(db)
  if (sealer && 'phone' in values) values.phoneIndex = phoneIndexOf(sealer.pii, values.phone)
  if (sealer) for (const field of ['phone', 'bio'] as const) if (field in values) values[field] = sealer.text(field, values[field])
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
  await deleteUserPasskeys(db, userId)
  await db.deleteFrom('userIdentities').where('userId', '=', userId).execute()
  await db.deleteFrom('oidcLoginCodes').where('userId', '=', userId).execute()
  await deleteMfaRecords(db, userId)
  await db.deleteFrom('emailOutbox')
    .where(eb => eb.or([eb('toAddress', '=', email), eb(sql<string>`payload->>'userId'`, '=', userId)]))
    .execute()
  // Stored answers replayed to an Idempotency-Key retry: the user's own, and any other that shows
  // it (a registration's, an admin's create). A claim still running (the erasure's own) is left.
  await db.deleteFrom('idempotencyKeys').where('state', '=', 'done')
    .where(eb => eb.or([eb('scope', '=', `user:${userId}`), eb('body', 'like', `%${userId}%`)]))
    .execute()
}

export async function deleteProfile (db: Executor, userId: string) {
  await db.deleteFrom('userProfiles').where('userId', '=', userId).execute()
}

export async function replaceUserRoles (db: Executor, userId: string, roleIds: string[]) {
  await db.deleteFrom('userRoles').where('userId', '=', userId).execute()
  if (roleIds.length > 0) await db.insertInto('userRoles').values(roleIds.map(roleId => ({ userId, roleId }))).execute()
}

export async function addUserRole (db: Executor, userId: string, roleId: string) {
  await db.insertInto('userRoles').values({ userId, roleId }).onConflict(oc => oc.doNothing()).execute()
}

export function findRolesByName (db: Executor, names: string[]) {
  if (names.length === 0) return Promise.resolve([])
  return db.selectFrom('roles').select(['id', 'name', 'permissions']).where('name', 'in', names).execute()
}

function escapeLike (text: string) {
  return text.replace(/[\\%_]/g, ch => `\\${ch}`)
}

/** The live users holding any of these (lower-cased) emails, locked for the rest of the transaction. */
export function lockLiveUsersByEmail (trx: Transaction<Database>, emails: string[]) {
  return trx.selectFrom('users').select(['id', 'email'])
    .where(sql<string>`lower(email)`, '=', sql<string>`any(${emails}::text[])`).where('deletedAt', 'is', null)
    .orderBy('id').forUpdate().execute()
}

/** A new user of a bulk insert: the row, its role ids and names, its profile. */
export interface BulkNewUser {
  email: string
  passwordHash: string
  firstName: string
  lastName: string
  status: UserStatus
  emailVerified: boolean
  createdAt?: Date
  roles: Array<{ id: string, name: string }>
  profile?: ProfileInput | null
}

const PROFILE_FIELDS = ['bio', 'avatarUrl', 'phone', 'locale', 'timezone'] as const

/**
 * Many new users with their roles and profiles, one statement per table whatever their number (a
 * bulk import); returns each one's id by email. The users come as one JSON parameter (the same on
 * pg and the embedded database, and one short statement to plan), and their rows already carry the
 * read model's role names and profile, so its triggers (003, 017) find them current instead of
 * rewriting every row; they still recompute them, so a wrong value could not stick.
 */
export async function insertUsers (trx: Transaction<Database>, rows: BulkNewUser[]) {
  if (rows.length === 0) return new Map<string, string>()
  // The read model's copy (users.profile) holds the very sealed values of the profile row, so the trigger finds it current.
  const sealer = piiSealer(trx)
  const profileOf = (profile: ProfileInput) => {
    const clear = Object.fromEntries(PROFILE_FIELDS.map(field => [field, profile[field] ?? null]))
    return sealer ? sealer.json('profile', clear) : clear
  }
  const sealedProfiles = new Map(rows.flatMap(row => row.profile ? [[row.email, profileOf(row.profile)] as const] : []))
  const json = JSON.stringify(rows.map(row => ({
    email: row.email,
    password_hash: row.passwordHash,
    first_name: row.firstName,
    last_name: row.lastName,
    status: row.status,
    email_verified: row.emailVerified,
    created_at: row.createdAt?.toISOString() ?? null,
    role_names: row.roles.map(role => role.name),
    profile: sealedProfiles.get(row.email) ?? null
  })))
  const { rows: inserted } = await sql<{ id: string, email: string }>`
    insert into users (email, password_hash, first_name, last_name, status, email_verified, created_at, updated_at, role_names, profile)
    select t.email, t.password_hash, t.first_name, t.last_name, t.status, t.email_verified, coalesce(t.created_at, now()), now(),
      array(select name from unnest(t.role_names) as name order by name), t.profile
    from jsonb_to_recordset(${json}::text::jsonb) as t(email text, password_hash text, first_name text, last_name text, status text,
      email_verified boolean, created_at timestamptz, role_names text[], profile jsonb)
    returning id, email`.execute(trx)
  const idOf = new Map(inserted.map(row => [row.email, row.id]))
  const roles = rows.flatMap(row => row.roles.map(role => ({ userId: idOf.get(row.email)!, roleId: role.id })))
  if (roles.length > 0) await trx.insertInto('userRoles').values(roles).execute()
  const profiles = rows.flatMap(row => row.profile
    ? [{ userId: idOf.get(row.email)!, ...sealedProfiles.get(row.email)!, ...(sealer ? { phoneIndex: phoneIndexOf(sealer.pii, row.profile.phone) } : {}) }]
    : [])
  if (profiles.length > 0) await trx.insertInto('userProfiles').values(profiles).execute()
  return idOf
}

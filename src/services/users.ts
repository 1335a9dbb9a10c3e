import { sql, type RawBuilder, type Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import { CompiledQueries } from '../db/compiled-queries.js'
import type { Database } from '../db/types.js'
import {
  conflict, forbidden, notFound, preconditionFailed, validationError
} from '../errors.js'
import { etagMatches, etagOf } from '../lib/etag.js'
import { decodeCursor, encodeCursor, listFingerprint } from '../lib/cursor.js'
import { assertPasswordPolicy, type PasswordHasher } from '../lib/password.js'
import { auditTrailOf, insertAudit, scrubAuditTrail } from '../repositories/audit.js'
import { listSessionsOfUser, revokeSessions } from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
import type { Executor, UserWithRelationsRow } from '../repositories/users.js'
import {
  USER_FIELDS, type Pagination, type Profile, type ProfileInput, type User, type UserCreate,
  type UserListQuery, type UserPatch, type UserReplace, type UserField
} from '../../schemas/user.js'
import { can, type RequestContext } from './context.js'
import { queueEmailVerification } from './email-verification.js'
import type { EmailOutbox } from './email.js'

const iso = (d: Date | null) => d === null ? null : d.toISOString()

export function toProfile (row: Pick<UserWithRelationsRow, 'bio' | 'avatarUrl' | 'phone' | 'locale' | 'timezone'>): Profile {
  return { bio: row.bio, avatarUrl: row.avatarUrl, phone: row.phone, locale: row.locale, timezone: row.timezone }
}

export function toUser (row: UserWithRelationsRow): User {
  return {
    id: row.id,
    email: row.email,
    firstName: row.firstName,
    lastName: row.lastName,
    status: row.status,
    emailVerified: row.emailVerified,
    roles: row.roles,
    profile: row.profileUserId ? toProfile(row) : null,
    lastLoginAt: iso(row.lastLoginAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    deletedAt: iso(row.deletedAt)
  }
}

const compiledLists = new CompiledQueries()

const SORT_COLUMNS = { createdAt: 'u.createdAt', email: 'u.email', lastName: 'u.lastName' } as const

function parseFields (fields: string | undefined): UserField[] | undefined {
  if (fields === undefined) return undefined
  const names = [...new Set(fields.split(',').map(f => f.trim()).filter(Boolean))]
  const unknown = names.filter(n => !(USER_FIELDS as readonly string[]).includes(n))
  if (names.length === 0 || unknown.length > 0) {
    throw validationError('Unknown field in fields', [{ field: 'fields', message: `unknown field(s): ${unknown.join(', ') || '(none given)'}; allowed: ${USER_FIELDS.join(', ')}` }])
  }
  return names as UserField[]
}

function pick (user: User, fields: UserField[] | undefined): Partial<User> {
  if (!fields) return user
  const out: Partial<User> = {}
  for (const f of fields) (out as Record<string, unknown>)[f] = user[f]
  return out
}

/** What changed between two representations, for the audit row (never a secret: users hold none). */
function diff (before: User, after: User): Record<string, { from: unknown, to: unknown }> {
  const changes: Record<string, { from: unknown, to: unknown }> = {}
  for (const key of ['email', 'firstName', 'lastName', 'status', 'emailVerified', 'roles', 'profile', 'deletedAt'] as const) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) changes[key] = { from: before[key], to: after[key] }
  }
  return changes
}

export interface UsersServiceDeps { db: DB, config: Config, hasher: PasswordHasher, emails: EmailOutbox }

export function createUsersService ({ db, hasher, emails }: UsersServiceDeps) {
  async function load (ex: Executor, id: string, includeDeleted = false): Promise<User> {
    const row = await users.findUserById(ex, id, includeDeleted)
    if (!row) throw notFound('User')
    return toUser(row)
  }

  async function resolveRoles (ex: Executor, names: string[]) {
    const roles = await users.findRolesByName(ex, names)
    const unknown = names.filter(n => !roles.some(r => r.name === n))
    if (unknown.length > 0) throw validationError('Unknown role', unknown.map(n => ({ field: 'roles', message: `unknown role "${n}"` })))
    return roles.map(r => r.id)
  }

  // Serialises changes that could leave no administrator (role, status and delete changes).
  async function lockAdministrators (trx: Transaction<Database>) {
    await sql`select pg_advisory_xact_lock(hashtext('user-management:administrators'))`.execute(trx)
  }

  async function assertAdministratorRemains (trx: Transaction<Database>) {
    if (await users.countAdministrators(trx) === 0) throw conflict('This change would leave no active administrator')
  }

  function assertMayManage (ctx: RequestContext, body: { roles?: unknown, status?: unknown }) {
    if ((body.roles !== undefined || body.status !== undefined) && !can(ctx, 'roles:manage')) {
      throw forbidden('Only a caller with roles:manage may set roles or status')
    }
  }

  /** Applies a change to a user inside one transaction: lock, check the ETag, write, audit. */
  async function change (ctx: RequestContext, id: string, ifMatch: string | undefined,
    apply: (trx: Transaction<Database>, before: User) => Promise<void>, action = 'user.updated') {
    const after = await db.transaction().execute(async trx => {
      if (!await users.lockUser(trx, id)) throw notFound('User')
      const before = await load(trx, id)
      if (ifMatch !== undefined && !etagMatches(ifMatch, etagOf(before))) throw preconditionFailed()
      await apply(trx, before)
      await users.updateUser(trx, id, {})
      const after = await load(trx, id)
      const changes = diff(before, after)
      await insertAudit(trx, ctx, { action, userId: id, changes })
      if (changes.roles) await insertAudit(trx, ctx, { action: 'user.roles_changed', userId: id, changes: { roles: changes.roles } })
      return after
    })
    return after
  }

  async function writeFields (trx: Transaction<Database>, before: User, body: UserPatch, replaceProfile: boolean) {
    const update: Record<string, unknown> = {}
    if (body.email !== undefined && body.email.toLowerCase() !== before.email) {
      update.email = body.email.toLowerCase()
      update.emailVerified = false
      await queueEmailVerification(trx, emails, before.id, body.email.toLowerCase())
    }
    if (body.firstName !== undefined) update.firstName = body.firstName
    if (body.lastName !== undefined) update.lastName = body.lastName
    if (body.status !== undefined && body.status !== before.status) {
      await lockAdministrators(trx)
      update.status = body.status
    }
    if (Object.keys(update).length > 0) await users.updateUser(trx, before.id, update)
    if (body.profile === null) await users.deleteProfile(trx, before.id)
    else if (body.profile !== undefined) await users.saveProfile(trx, before.id, body.profile, replaceProfile)
    if (body.roles !== undefined) {
      // Taken even when the status branch took it (it is re-entrant): a status equal to the current one takes no lock there.
      await lockAdministrators(trx)
      await users.replaceUserRoles(trx, before.id, await resolveRoles(trx, body.roles))
    }
    if (body.roles !== undefined || body.status !== undefined) await assertAdministratorRemains(trx)
  }

  /**
   * Creates an account with its roles, profile and a queued verification email, in one transaction.
   * Callers decide who may set roles and status (create checks roles:manage; register sets them itself).
   */
  async function createAccount (ctx: RequestContext, body: UserCreate, options: { actorIsNewUser?: boolean, auditNote?: Record<string, unknown> } = {}): Promise<User> {
    const email = body.email.toLowerCase()
    assertPasswordPolicy(body.password, email)
    const passwordHash = await hasher.hash(body.password)
    // A taken email fails on the unique index (EMAIL_TAKEN), also when two requests race.
    return db.transaction().execute(async trx => {
      const roleIds = await resolveRoles(trx, body.roles ?? ['user'])
      const id = await users.insertUser(trx, {
        email, passwordHash, firstName: body.firstName, lastName: body.lastName, status: body.status ?? 'active'
      })
      await users.replaceUserRoles(trx, id, roleIds)
      if (body.profile) await users.saveProfile(trx, id, body.profile, true)
      await queueEmailVerification(trx, emails, id, email)
      const user = await load(trx, id)
      await insertAudit(trx, options.actorIsNewUser ? { ...ctx, actorId: id } : ctx, {
        action: 'user.created',
        userId: id,
        changes: { email: user.email, firstName: user.firstName, lastName: user.lastName, status: user.status, roles: user.roles, ...options.auditNote }
      })
      return user
    })
  }

  return {
    async list (query: UserListQuery) {
      const fields = parseFields(query.fields)
      const descending = query.sort.startsWith('-')
      const sortKey = query.sort.replace('-', '') as keyof typeof SORT_COLUMNS
      const column = SORT_COLUMNS[sortKey]
      const fingerprint = listFingerprint([query.sort, query.q, query.role, query.status, query.emailVerified,
        query.createdAfter, query.createdBefore, query.includeDeleted])

      // Only the parameters are gathered on every call; each condition's SQL is built when its
      // shape is first compiled (the rows and the count query are compiled once per shape).
      const conditions: Array<() => RawBuilder<boolean>> = [() => sql`u.erased_at is null`]
      const filterParameters: unknown[] = []
      const shape: unknown[] = [query.sort, query.includeDeleted]
      const where = (condition: () => RawBuilder<boolean>, ...values: unknown[]) => {
        conditions.push(condition)
        filterParameters.push(...values)
      }
      if (!query.includeDeleted) where(() => sql`u.deleted_at is null`)
      if (query.status) where(() => sql`u.status = ${query.status}`, query.status)
      if (query.emailVerified !== undefined) where(() => sql`u.email_verified = ${query.emailVerified}`, query.emailVerified)
      if (query.createdAfter) {
        const after = new Date(query.createdAfter)
        where(() => sql`u.created_at > ${after}`, after)
      }
      if (query.createdBefore) {
        const before = new Date(query.createdBefore)
        where(() => sql`u.created_at < ${before}`, before)
      }
      if (query.role) {
        where(() => sql`exists (select 1 from user_roles ur join roles r on r.id = ur.role_id where ur.user_id = u.id and r.name = ${query.role})`, query.role)
      }
      if (query.q) {
        const pattern = '%' + users.escapeLike(query.q) + '%'
        where(() => sql`(u.email || ' ' || u.first_name || ' ' || u.last_name) ilike ${pattern}`, pattern)
      }
      shape.push(query.status !== undefined, query.emailVerified !== undefined, query.createdAfter !== undefined,
        query.createdBefore !== undefined, query.role !== undefined, query.q !== undefined, query.cursor !== undefined)
      const filters = () => sql<boolean>`${sql.join(conditions.map(condition => condition()), sql` and `)}`

      const rowParameters = [...filterParameters]
      let keyset = () => sql<boolean>`true`
      if (query.cursor) {
        const position = decodeCursor(query.cursor, fingerprint)
        const value = sortKey === 'createdAt' ? new Date(position.value) : position.value
        if (value instanceof Date && Number.isNaN(value.getTime())) throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
        keyset = descending
          ? () => sql`(${sql.ref(column)}, u.id) < (${value}, ${position.id})`
          : () => sql`(${sql.ref(column)}, u.id) > (${value}, ${position.id})`
        rowParameters.push(value, position.id)
      }

      const direction = descending ? 'desc' : 'asc'
      const limit = query.limit + 1
      const offset = query.cursor ? 0 : (query.page - 1) * query.limit
      rowParameters.push(limit, offset)
      const shapeKey = JSON.stringify(shape)
      const rowsQuery = compiledLists.run(db, `rows:${shapeKey}`, rowParameters, () => users.selectUsers(db)
        .where(filters())
        .where(keyset())
        .orderBy(column, direction).orderBy('u.id', direction)
        .limit(limit)
        .offset(offset))
      const [rows, total] = await Promise.all([
        rowsQuery.then(result => result.rows),
        query.cursor
          ? null
          : compiledLists.run(db, `count:${shapeKey}`, filterParameters, () => db.selectFrom('users as u')
            .where(filters())
            .select(sql<number>`count(*)::int`.as('total'))).then(result => result.rows[0].total)
      ])

      const hasNext = rows.length > query.limit
      const visible = rows.slice(0, query.limit).map(toUser)
      const last = visible[visible.length - 1]
      const nextCursor = hasNext && last
        ? encodeCursor(fingerprint, { value: sortKey === 'createdAt' ? last.createdAt : last[sortKey], id: last.id })
        : null
      const pagination: Pagination = {
        page: query.cursor ? null : query.page,
        limit: query.limit,
        total,
        totalPages: total === null ? null : Math.ceil(total / query.limit),
        hasNext,
        nextCursor
      }
      return { data: visible.map(u => pick(u, fields)), pagination }
    },

    async get (id: string) {
      const user = await load(db, id)
      return { user, etag: etagOf(user) }
    },

    async create (ctx: RequestContext, body: UserCreate): Promise<User> {
      assertMayManage(ctx, body)
      return createAccount(ctx, body)
    },

    createAccount,

    replace (ctx: RequestContext, id: string, body: UserReplace, ifMatch?: string) {
      assertMayManage(ctx, body)
      return change(ctx, id, ifMatch, (trx, before) => writeFields(trx, before, body, true))
    },

    patch (ctx: RequestContext, id: string, body: UserPatch, ifMatch?: string) {
      assertMayManage(ctx, body)
      return change(ctx, id, ifMatch, (trx, before) => writeFields(trx, before, body, false))
    },

    async setRoles (ctx: RequestContext, id: string, roles: string[]) {
      return change(ctx, id, undefined, (trx, before) => writeFields(trx, before, { roles }, false))
    },

    async getProfile (id: string): Promise<Profile> {
      const user = await load(db, id)
      return user.profile ?? { bio: null, avatarUrl: null, phone: null, locale: null, timezone: null }
    },

    async saveProfile (ctx: RequestContext, id: string, profile: ProfileInput, replace: boolean): Promise<Profile> {
      const user = await change(ctx, id, undefined, async (trx, before) => {
        await users.saveProfile(trx, before.id, profile, replace)
      })
      return user.profile as Profile
    },

    async remove (ctx: RequestContext, id: string, ifMatch?: string) {
      await db.transaction().execute(async trx => {
        if (!await users.lockUser(trx, id)) throw notFound('User')
        const before = await load(trx, id)
        if (ifMatch !== undefined && !etagMatches(ifMatch, etagOf(before))) throw preconditionFailed()
        await lockAdministrators(trx)
        const now = new Date()
        await users.updateUser(trx, id, { deletedAt: now })
        await revokeSessions(trx, id)
        await assertAdministratorRemains(trx)
        await insertAudit(trx, ctx, { action: 'user.deleted', userId: id, changes: { deletedAt: { from: null, to: now.toISOString() } } })
      })
    },

    async exportData (id: string) {
      const user = await load(db, id)
      const [sessionRows, auditRows] = await Promise.all([listSessionsOfUser(db, id), auditTrailOf(db, id, 10_000)])
      return {
        user,
        profile: user.profile,
        roles: user.roles,
        sessions: sessionRows.map(s => ({
          ...s, createdAt: s.createdAt.toISOString(), lastUsedAt: s.lastUsedAt.toISOString(), expiresAt: s.expiresAt.toISOString(), revokedAt: iso(s.revokedAt)
        })),
        auditTrail: auditRows.map(a => ({ ...a, createdAt: a.createdAt.toISOString() }))
      }
    },

    /** GDPR erasure: personal data is overwritten for good; the audit trail keeps its shape without PII. */
    async erase (ctx: RequestContext, id: string) {
      await db.transaction().execute(async trx => {
        const locked = await users.lockUser(trx, id, true)
        if (!locked) throw notFound('User')
        await lockAdministrators(trx)
        const now = new Date()
        await users.updateUser(trx, id, {
          email: `erased-${id}@erased.invalid`,
          firstName: 'Erased',
          lastName: 'User',
          passwordHash: '!erased',
          status: 'suspended',
          emailVerified: false,
          lastLoginAt: null,
          deletedAt: locked.deletedAt ?? now,
          erasedAt: now
        })
        await users.deletePersonalRecords(trx, id, locked.email)
        await scrubAuditTrail(trx, id)
        await assertAdministratorRemains(trx)
        await insertAudit(trx, { ...ctx, ...(ctx.actorId === id ? { ip: null, userAgent: null } : {}) }, { action: 'user.erased', userId: id })
      })
    },

    restore (ctx: RequestContext, id: string): Promise<User> {
      return db.transaction().execute(async trx => {
        const locked = await users.lockUser(trx, id, true)
        if (!locked) throw notFound('User')
        if (locked.deletedAt === null) return load(trx, id)
        await users.updateUser(trx, id, { deletedAt: null })
        await insertAudit(trx, ctx, { action: 'user.restored', userId: id, changes: { deletedAt: { from: locked.deletedAt.toISOString(), to: null } } })
        return load(trx, id)
      })
    }
  }
}

export type UsersService = ReturnType<typeof createUsersService>

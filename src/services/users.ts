import type { Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { DB } from '../db/connect.js'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { LagTolerantReads } from '../db/read-routing.js'
import type { Database } from '../db/types.js'
import { forbidden, notFound, preconditionFailed, validationError } from '../errors.js'
import { changesBetween } from '../lib/changes.js'
import { etagMatches, etagOf } from '../lib/etag.js'
import { decodeCursor, encodeCursor, listFingerprint } from '../lib/cursor.js'
import { createPasswordPolicy, type PasswordHasher, type PasswordPolicy } from '../lib/password.js'
import { parseSearch } from '../lib/search-query.js'
import { dateOf } from '../lib/timestamp.js'
import { auditTrailOf, insertAudit, scrubAuditTrail } from '../repositories/audit.js'
import { listSessionsOfUser, revokeSessions } from '../repositories/sessions.js'
import { findMfaState } from '../repositories/mfa.js'
import { consentHistory, deleteConsents } from '../repositories/consents.js'
import { listIdentities } from '../repositories/identities.js'
import { listPasskeysForExport } from '../repositories/passkeys.js'
import { eraseInvitationsOf, invitationsOfUser } from '../repositories/invitations.js'
import { lockAdministrators } from '../repositories/administrators.js'
import * as users from '../repositories/users.js'
import type { Executor, UserListFilter, UserWithRelationsRow } from '../repositories/users.js'
import {
  USER_FIELDS, type Pagination, type Profile, type ProfileInput, type User, type UserCreate, type UserStatus,
  type UserListQuery, type UserPatch, type UserReplace, type UserField
} from '../../schemas/user.js'
import { assertAdministratorRemains } from './administrators.js'
import { NO_ACCESS_AUDIT, type AccessAudit } from './access-audit.js'
import { can, type RequestContext } from './context.js'
import { queueEmailVerification } from './email-verification.js'
import type { EmailOutbox } from './email.js'

const iso = (d: Date | null) => d === null ? null : d.toISOString()

export function toUser (row: UserWithRelationsRow): User {
  return {
    id: row.id,
    email: row.email,
    firstName: row.firstName,
    lastName: row.lastName,
    status: row.status,
    emailVerified: row.emailVerified,
    roles: row.roles,
    profile: row.profile,
    lastLoginAt: iso(row.lastLoginAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    deletedAt: iso(row.deletedAt)
  }
}

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

const AUDITED_FIELDS = ['email', 'firstName', 'lastName', 'status', 'emailVerified', 'roles', 'profile', 'deletedAt'] as const

export interface UsersServiceDeps {
  db: DB
  compiled: CompiledQueries
  reads: LagTolerantReads
  config: Config
  hasher: PasswordHasher
  emails: EmailOutbox
  /** Every new password's check (policy, breaches); the policy alone by default. */
  passwordPolicy?: PasswordPolicy
  /** user.viewed rows for reads of other users' records (AUDIT_DATA_ACCESS); off by default. */
  accessAudit?: AccessAudit
}

/** A new account's row, its password already hashed (see insertAccount). */
export interface NewAccount {
  email: string
  passwordHash: string
  firstName: string
  lastName: string
  status: UserStatus
  emailVerified?: boolean
  profile?: ProfileInput | null
  /** Role names; an unknown one is a 400 (and the caller's transaction rolls back). */
  roles: string[]
}

interface AccountOptions {
  actorIsNewUser?: boolean
  auditNote?: Record<string, unknown>
  /** More writes of the new account's transaction (a registration's consents). */
  andThen?: (trx: Transaction<Database>, user: User) => Promise<void>
}

/**
 * A write whose checks and slow preparation (password hashing) are done, waiting for a transaction:
 * a single request runs it in its own, an atomic batch runs them all in one.
 */
export type Write<T> = (trx: Transaction<Database>) => Promise<T>

/** The user.created audit row's changes: a single create, a registration, an invitation and an import alike. */
export function createdChanges (user: Pick<User, 'email' | 'firstName' | 'lastName' | 'status' | 'roles'>, note?: Record<string, unknown>) {
  return { email: user.email, firstName: user.firstName, lastName: user.lastName, status: user.status, roles: user.roles, ...note }
}

/** What an import may change on a user that already holds the email (onConflict: update). */
export interface ImportedChange {
  firstName: string
  lastName: string
  profile?: ProfileInput | null
  roles?: string[]
  status?: UserStatus
  emailVerified?: boolean
  /** Already hashed (or a legacy hash kept as it is). */
  passwordHash?: string
}

export function createUsersService ({ db, compiled, reads, hasher, emails, passwordPolicy = createPasswordPolicy(), accessAudit = NO_ACCESS_AUDIT }: UsersServiceDeps) {
  async function load (ex: Executor, id: string, includeDeleted = false): Promise<User> {
    const row = await users.findUserById(ex, compiled, id, includeDeleted)
    if (!row) throw notFound('User')
    return toUser(row)
  }

  function assertKnownRoles (names: string[], found: string[]) {
    const unknown = names.filter(n => !found.includes(n))
    if (unknown.length > 0) throw validationError('Unknown role', unknown.map(n => ({ field: 'roles', message: `unknown role "${n}"` })))
  }

  async function resolveRoles (ex: Executor, names: string[]) {
    const roles = await users.findRolesByName(ex, names)
    assertKnownRoles(names, roles.map(r => r.name))
    return roles.map(r => r.id)
  }

  function assertMayManage (ctx: RequestContext, body: { roles?: unknown, status?: unknown }) {
    if ((body.roles !== undefined || body.status !== undefined) && !can(ctx, 'roles:manage')) {
      throw forbidden('Only a caller with roles:manage may set roles or status')
    }
  }

  /** Locks the live user for the rest of the transaction and checks If-Match against it: the user as it was. */
  async function lockForChange (trx: Transaction<Database>, id: string, ifMatch: string | undefined): Promise<User> {
    const row = await users.lockLiveUser(trx, id)
    if (!row) throw notFound('User')
    const before = toUser(row)
    if (ifMatch !== undefined && !etagMatches(ifMatch, etagOf(before))) throw preconditionFailed()
    return before
  }

  /** Applies a change to a user in the caller's transaction: lock, check the ETag, write, audit. */
  async function changeIn (trx: Transaction<Database>, ctx: RequestContext, id: string, ifMatch: string | undefined,
    apply: (trx: Transaction<Database>, before: User) => Promise<void>) {
    const before = await lockForChange(trx, id, ifMatch)
    await apply(trx, before)
    const after = await load(trx, id)
    const changes = changesBetween(before, after, AUDITED_FIELDS)
    await insertAudit(trx, ctx, { action: 'user.updated', userId: id, changes })
    if (changes.roles) await insertAudit(trx, ctx, { action: 'user.roles_changed', userId: id, changes: { roles: changes.roles } })
    return after
  }

  /** changeIn, in a transaction of its own. */
  function change (ctx: RequestContext, id: string, ifMatch: string | undefined, apply: (trx: Transaction<Database>, before: User) => Promise<void>) {
    return db.transaction().execute(trx => changeIn(trx, ctx, id, ifMatch, apply))
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
    // Also when nothing but the profile or the roles changes: updated_at moves with every change.
    await users.updateUser(trx, before.id, update)
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
   * Writes a new account in the caller's transaction: the user, its roles, its profile, a
   * verification email unless the email is already verified, and the user.created audit row.
   */
  async function insertAccount (trx: Transaction<Database>, ctx: RequestContext, account: NewAccount, options: AccountOptions = {}): Promise<User> {
    const { id, roles } = await users.insertUserWithRoles(trx, {
      email: account.email, passwordHash: account.passwordHash, firstName: account.firstName, lastName: account.lastName, status: account.status, emailVerified: account.emailVerified ?? false
    }, account.roles)
    assertKnownRoles(account.roles, roles)
    if (account.profile) await users.saveProfile(trx, id, account.profile, true)
    if (!account.emailVerified) await queueEmailVerification(trx, emails, id, account.email)
    const user = await load(trx, id)
    await insertAudit(trx, options.actorIsNewUser ? { ...ctx, actorId: id } : ctx, { action: 'user.created', userId: id, changes: createdChanges(user, options.auditNote) })
    await options.andThen?.(trx, user)
    return user
  }

  /**
   * Checks a new account's password and hashes it (outside any transaction: hashing is slow); the
   * write inserts it with insertAccount. Callers decide who may set roles and status (create checks
   * roles:manage; register sets them itself).
   */
  async function prepareAccount (ctx: RequestContext, body: UserCreate, options: AccountOptions = {}): Promise<Write<User>> {
    const email = body.email.toLowerCase()
    await passwordPolicy(body.password, email)
    const passwordHash = await hasher.hash(body.password)
    // A taken email fails on the unique index (EMAIL_TAKEN), also when two requests race.
    return trx => insertAccount(trx, ctx, {
      email, passwordHash, firstName: body.firstName, lastName: body.lastName, status: body.status ?? 'active', profile: body.profile, roles: body.roles ?? ['user']
    }, options)
  }

  /** Creates an account with its roles, profile and a queued verification email, in one transaction. */
  async function createAccount (ctx: RequestContext, body: UserCreate, options: AccountOptions = {}): Promise<User> {
    return db.transaction().execute(await prepareAccount(ctx, body, options))
  }

  /**
   * The writes of the single requests on a user, checked and prepared but not yet run: the routes
   * run each in its own transaction (the methods below), the batch also runs them all in one.
   */
  const writes = {
    async create (ctx: RequestContext, body: UserCreate): Promise<Write<User>> {
      assertMayManage(ctx, body)
      return prepareAccount(ctx, body)
    },

    async patch (ctx: RequestContext, id: string, body: UserPatch, ifMatch?: string): Promise<Write<User>> {
      assertMayManage(ctx, body)
      return trx => changeIn(trx, ctx, id, ifMatch, (trx, before) => writeFields(trx, before, body, false))
    },

    async remove (ctx: RequestContext, id: string, ifMatch?: string): Promise<Write<void>> {
      return async trx => {
        await lockForChange(trx, id, ifMatch)
        await lockAdministrators(trx)
        const now = new Date()
        await users.updateUser(trx, id, { deletedAt: now })
        await revokeSessions(trx, id)
        await assertAdministratorRemains(trx)
        await insertAudit(trx, ctx, { action: 'user.deleted', userId: id, changes: { deletedAt: { from: null, to: now.toISOString() } } })
      }
    },

    async restore (ctx: RequestContext, id: string): Promise<Write<User>> {
      return async trx => {
        const locked = await users.lockUser(trx, id)
        if (!locked) throw notFound('User')
        if (locked.deletedAt === null) return load(trx, id)
        await users.updateUser(trx, id, { deletedAt: null })
        await insertAudit(trx, ctx, { action: 'user.restored', userId: id, changes: { deletedAt: { from: locked.deletedAt.toISOString(), to: null } } })
        return load(trx, id)
      }
    }
  }

  /** A prepared write in a transaction of its own. */
  const run = async <T>(write: Promise<Write<T>>): Promise<T> => db.transaction().execute(await write)

  return {
    /** On the replica when there is one (callerId: whose own writes it must show). */
    async list (query: UserListQuery, callerId: string | null = null) {
      const fields = parseFields(query.fields)
      const descending = query.sort.startsWith('-') || query.sort === 'relevance'
      const sort = query.sort.replace('-', '') as UserListFilter['sort']
      if (query.q === undefined && sort === 'relevance') throw validationError('sort=relevance needs q', [{ field: 'sort', message: 'relevance needs q' }])
      if (query.q === undefined && query.fuzzy) throw validationError('fuzzy needs q', [{ field: 'fuzzy', message: 'needs q' }])
      const terms = query.q === undefined ? undefined : parseSearch(query.q, { fuzzy: query.fuzzy })
      const fingerprint = listFingerprint([query.sort, query.q, query.role, query.status, query.emailVerified,
        query.createdAfter, query.createdBefore, query.includeDeleted, ...(query.fuzzy ? ['fuzzy'] : [])])
      let after: UserListFilter['after']
      if (query.cursor) {
        const position = decodeCursor(query.cursor, fingerprint)
        const value = sort === 'createdAt' ? new Date(position.value) : position.value
        // A relevance cursor carries the last row's score (a decimal, see listUsers).
        const malformed = value instanceof Date ? Number.isNaN(value.getTime()) : sort === 'relevance' && !/^\d{1,3}(\.\d{1,6})?$/.test(value)
        if (malformed) throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
        after = { value, id: position.id }
      }
      const { rows, total } = await reads.run(callerId, (db, compiled) => users.listUsers(db, compiled, {
        sort,
        descending,
        includeDeleted: query.includeDeleted,
        status: query.status,
        emailVerified: query.emailVerified,
        createdAfter: query.createdAfter === undefined ? undefined : dateOf(query.createdAfter),
        createdBefore: query.createdBefore === undefined ? undefined : dateOf(query.createdBefore),
        role: query.role,
        terms,
        after,
        // One more than asked: whether it comes back tells if there is a next page.
        limit: query.limit + 1,
        offset: after ? 0 : (query.page - 1) * query.limit,
        withTotal: !after
      }))

      const hasNext = rows.length > query.limit
      const visible = rows.slice(0, query.limit)
      const last = visible[visible.length - 1]
      // Any row's position in this list (GraphQL gives one per edge); REST only needs the last one's.
      // A relevance position is the row's score (a decimal, see listUsers).
      const cursorAt = (index: number) => {
        const row = visible[index]
        return encodeCursor(fingerprint, { value: sort === 'relevance' ? String(row.relevance) : toUser(row)[sort], id: row.id })
      }
      const nextCursor = hasNext && last ? cursorAt(visible.length - 1) : null
      const pagination: Pagination = {
        page: after ? null : query.page,
        limit: query.limit,
        total,
        totalPages: total === null ? null : Math.ceil(total / query.limit),
        hasNext,
        nextCursor
      }
      return { data: visible.map(row => pick(toUser(row), fields)), pagination, cursorAt }
    },

    /** viewer: who reads, for the access audit (a read of another user's record is a user.viewed row, written later in a batch). */
    async get (id: string, viewer?: RequestContext) {
      const user = await load(db, id)
      if (viewer) accessAudit.viewed(viewer, id)
      return { user, etag: etagOf(user) }
    },

    create: (ctx: RequestContext, body: UserCreate): Promise<User> => run(writes.create(ctx, body)),

    writes,
    createAccount,
    insertAccount,
    resolveRoles,
    assertKnownRoles,
    assertMayManage,

    /**
     * An import's change of a user that already holds the email, in the import's transaction: the
     * fields as PATCH writes them (locks, audit rows, the administrator check), plus the flags and
     * password hash only an import sets. A new password ends the user's logins, as a reset does.
     */
    updateImported (trx: Transaction<Database>, ctx: RequestContext, id: string, change: ImportedChange) {
      const { passwordHash, emailVerified, ...fields } = change
      return changeIn(trx, ctx, id, undefined, async (trx, before) => {
        await writeFields(trx, before, fields, false)
        if (emailVerified !== undefined) await users.updateUser(trx, id, { emailVerified })
        if (passwordHash !== undefined) {
          await users.updateUser(trx, id, { passwordHash })
          await revokeSessions(trx, id)
        }
      })
    },

    replace (ctx: RequestContext, id: string, body: UserReplace, ifMatch?: string) {
      assertMayManage(ctx, body)
      return change(ctx, id, ifMatch, (trx, before) => writeFields(trx, before, body, true))
    },

    patch: (ctx: RequestContext, id: string, body: UserPatch, ifMatch?: string) => run(writes.patch(ctx, id, body, ifMatch)),

    async setRoles (ctx: RequestContext, id: string, roles: string[]) {
      return change(ctx, id, undefined, (trx, before) => writeFields(trx, before, { roles }, false))
    },

    async getProfile (id: string): Promise<Profile> {
      const user = await load(db, id)
      return user.profile ?? { bio: null, avatarUrl: null, phone: null, locale: null, timezone: null }
    },

    async saveProfile (ctx: RequestContext, id: string, profile: ProfileInput, replace: boolean): Promise<Profile> {
      const user = await change(ctx, id, undefined, (trx, before) => writeFields(trx, before, { profile }, replace))
      return user.profile as Profile
    },

    remove: (ctx: RequestContext, id: string, ifMatch?: string) => run(writes.remove(ctx, id, ifMatch)),

    /** On the replica when there is one, as list; audited (user.exported) on the primary once read. */
    async exportData (ctx: RequestContext, id: string) {
      // Not found is an answer, not a replica failure: thrown after the read.
      const found = await reads.run(ctx.actorId, async (db, compiled) => {
        const row = await users.findUserById(db, compiled, id)
        if (!row) return undefined
        const [sessionRows, auditRows, mfa, consentRows, identityRows, passkeyRows, invitationRows] = await Promise.all([
          listSessionsOfUser(db, id), auditTrailOf(db, id, 10_000), findMfaState(db, id), consentHistory(db, id, 10_000),
          listIdentities(db, id), listPasskeysForExport(db, id), invitationsOfUser(db, id, row.email, 10_000)
        ])
        return { user: toUser(row), sessionRows, auditRows, mfa, consentRows, identityRows, passkeyRows, invitationRows }
      })
      if (!found) throw notFound('User')
      const { user, sessionRows, auditRows, mfa, consentRows, identityRows, passkeyRows, invitationRows } = found
      await insertAudit(db, ctx, { action: 'user.exported', userId: id })
      return {
        user,
        profile: user.profile,
        roles: user.roles,
        sessions: sessionRows.map(s => ({
          ...s, createdAt: s.createdAt.toISOString(), lastUsedAt: s.lastUsedAt.toISOString(), expiresAt: s.expiresAt.toISOString(), revokedAt: iso(s.revokedAt)
        })),
        mfa,
        auditTrail: auditRows.map(a => ({ ...a, createdAt: a.createdAt.toISOString() })),
        consents: consentRows.map(c => ({ ...c, createdAt: c.createdAt.toISOString() })),
        identities: identityRows.map(i => ({ ...i, createdAt: i.createdAt.toISOString() })),
        passkeys: passkeyRows.map(p => ({ ...p, createdAt: p.createdAt.toISOString(), lastUsedAt: iso(p.lastUsedAt) })),
        invitations: invitationRows.map(i => ({
          ...i, createdAt: i.createdAt.toISOString(), expiresAt: i.expiresAt.toISOString(), acceptedAt: iso(i.acceptedAt), revokedAt: iso(i.revokedAt)
        }))
      }
    },

    /**
     * GDPR erasure: personal data is overwritten for good; the audit trail keeps its shape without
     * PII. With deletedBefore (retention), only a user soft-deleted before then is erased, checked
     * under the row's lock: false, and nothing done, for one restored or erased meanwhile.
     */
    async erase (ctx: RequestContext, id: string, deletedBefore?: Date): Promise<boolean> {
      return db.transaction().execute(async trx => {
        const locked = await users.lockUser(trx, id)
        if (deletedBefore && !(locked?.deletedAt && locked.deletedAt < deletedBefore)) return false
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
        await deleteConsents(trx, id)
        await eraseInvitationsOf(trx, id, locked.email)
        await scrubAuditTrail(trx, id)
        await assertAdministratorRemains(trx)
        await insertAudit(trx, { ...ctx, ...(ctx.actorId === id ? { ip: null, userAgent: null } : {}) }, { action: 'user.erased', userId: id })
        return true
      })
    },

    restore: (ctx: RequestContext, id: string): Promise<User> => run(writes.restore(ctx, id))
  }
}

export type UsersService = ReturnType<typeof createUsersService>

import type { DB } from '../db/connect.js'
import { emailTaken, clientFailure, itemError, validationError, type AppError } from '../errors.js'
import { hashKindOf, type PasswordHasher, type PasswordPolicy } from '../lib/password.js'
import { INVALID_REQUEST } from '../lib/validation.js'
import { dateOf } from '../lib/timestamp.js'
import { insertAudits } from '../repositories/audit.js'
import { inSavepoint } from '../repositories/savepoints.js'
import { findRolesByName, insertUsers, lockLiveUsersByEmail } from '../repositories/users.js'
import type { UserImport, UserImportEntry, UserImportResult } from '../../schemas/user-bulk.js'
import type { RequestContext } from './context.js'
import { createdChanges, type UsersService } from './users.js'

const UNSUPPORTED_HASH = 'is not a supported hash: bcrypt ($2a$, $2b$, $2y$), scrypt or argon2i/argon2id in PHC format, or pbkdf2_sha256$<iterations>$<salt>$<hash>'

interface Ready { index: number, entry: UserImportEntry, email: string, passwordHash: string, roles: string[] }

export function createUserImportService ({ db, hasher, passwordPolicy, users }: { db: DB, hasher: PasswordHasher, passwordPolicy: PasswordPolicy, users: UsersService }) {
  /** A password goes through the policy and the hasher as any new one; a hash of a kind a login verifies is kept as it is. */
  async function passwordHashOf (entry: UserImportEntry, email: string): Promise<string> {
    if ((entry.password === undefined) === (entry.passwordHash === undefined)) {
      throw validationError(INVALID_REQUEST, [{ field: 'password', message: 'give exactly one of password and passwordHash' }])
    }
    if (entry.passwordHash !== undefined) {
      if (hashKindOf(entry.passwordHash) === undefined) throw validationError('The password hash is not supported', [{ field: 'passwordHash', message: UNSUPPORTED_HASH }])
      return entry.passwordHash
    }
    await passwordPolicy(entry.password!, email)
    return hasher.hash(entry.password!)
  }

  return {
    /**
     * Imports up to 1000 users in one transaction: new ones in one statement per table (users,
     * roles, profiles, audit rows), those whose email a live user holds as onConflict says.
     * An entry that cannot be imported is listed in failed with its index; the others are.
     */
    async importUsers (ctx: RequestContext, body: UserImport): Promise<UserImportResult> {
      for (const entry of body.users) users.assertMayManage(ctx, entry)
      const failed: Array<{ index: number, error: AppError }> = []
      const fail = (index: number, err: unknown) => { failed.push({ index, error: clientFailure(err) }) }

      const roleIds = new Map((await findRolesByName(db, [...new Set(body.users.flatMap(entry => entry.roles ?? []).concat('user'))])).map(role => [role.name, role.id]))
      const seen = new Set<string>()
      const prepared = await Promise.all(body.users.map(async (entry, index): Promise<Ready | undefined> => {
        try {
          const email = entry.email.toLowerCase()
          // A second entry for the same email would conflict with the first one.
          if (seen.has(email)) throw emailTaken()
          seen.add(email)
          const roles = entry.roles ?? ['user']
          users.assertKnownRoles(roles, roles.filter(name => roleIds.has(name)))
          return { index, entry, email, roles, passwordHash: await passwordHashOf(entry, email) }
        } catch (err) {
          fail(index, err)
          return undefined
        }
      }))
      const ready = prepared.filter(item => item !== undefined)

      let updated = 0
      let skipped = 0
      const fresh = await db.transaction().execute(async trx => {
        const holders = new Map((await lockLiveUsersByEmail(trx, ready.map(item => item.email))).map(user => [user.email, user.id]))
        for (const { index, entry, email, passwordHash } of ready.filter(item => holders.has(item.email))) {
          if (body.onConflict === 'skip') skipped++
          else if (body.onConflict !== 'update') fail(index, emailTaken())
          else {
            const { firstName, lastName, profile, roles, status, emailVerified } = entry
            try {
              await inSavepoint(trx, () => users.updateImported(trx, ctx, holders.get(email)!, { firstName, lastName, profile, roles, status, emailVerified, passwordHash }))
              updated++
            } catch (err) {
              fail(index, err)
            }
          }
        }
        const fresh = ready.filter(item => !holders.has(item.email))
        const ids = await insertUsers(trx, fresh.map(({ entry, email, passwordHash, roles }) => ({
          email,
          passwordHash,
          firstName: entry.firstName,
          lastName: entry.lastName,
          status: entry.status ?? 'active',
          emailVerified: entry.emailVerified ?? false,
          createdAt: entry.createdAt === undefined ? undefined : dateOf(entry.createdAt),
          roles: roles.map(name => ({ id: roleIds.get(name)!, name })),
          profile: entry.profile
        })))
        await insertAudits(trx, ctx, fresh.map(({ entry, email, roles }) => ({
          action: 'user.created',
          userId: ids.get(email)!,
          changes: createdChanges({ email, firstName: entry.firstName, lastName: entry.lastName, status: entry.status ?? 'active', roles: [...roles].sort() }, { imported: true })
        })))
        return fresh.length
      })
      return {
        created: fresh,
        updated,
        skipped,
        failed: failed.sort((a, b) => a.index - b.index).map(({ index, error }) => ({ index, error: itemError(error) }))
      }
    }
  }
}

export type UserImportService = ReturnType<typeof createUserImportService>

import type { Insertable, Kysely, Selectable, Transaction, Updateable } from 'kysely'
import type {
  DB, EmailOutbox, EmailVerificationTokens, PasswordResetTokens, RefreshTokens, Roles,
  UserAuditLog, UserProfiles, UserRoles, Users, UserSessions
} from './generated.js'

// The table types are generated from the migrated schema (`npm run db:types`, src/db/generated.ts);
// this file gives them the names the rest of the code uses.

export type Database = DB

/** What a query runs on: the database or a transaction. */
export type Executor = Kysely<Database> | Transaction<Database>

export type UsersTable = Users
export type UserProfilesTable = UserProfiles
export type RolesTable = Roles
export type UserRolesTable = UserRoles
export type UserSessionsTable = UserSessions
export type RefreshTokensTable = RefreshTokens
export type PasswordResetTokensTable = PasswordResetTokens
export type EmailVerificationTokensTable = EmailVerificationTokens
export type UserAuditLogTable = UserAuditLog
export type EmailOutboxTable = EmailOutbox

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type ProfileRow = Selectable<UserProfilesTable>
export type RoleRow = Selectable<RolesTable>
export type SessionRow = Selectable<UserSessionsTable>
export type AuditRow = Selectable<UserAuditLogTable>
export type NewAuditRow = Insertable<UserAuditLogTable>

import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>

export interface UsersTable {
  id: Generated<string>
  email: string
  passwordHash: string
  firstName: string
  lastName: string
  status: Generated<'active' | 'suspended' | 'pending'>
  emailVerified: Generated<boolean>
  lastLoginAt: NullableTimestamp
  createdAt: Timestamp
  updatedAt: Timestamp
  deletedAt: NullableTimestamp
  erasedAt: NullableTimestamp
  /** Read model, kept by triggers from user_roles and roles (migration 003). */
  roleNames: ColumnType<string[], never, never>
  /** Read model, kept by triggers from user_profiles (migration 003). */
  profile: ColumnType<unknown, never, never>
}

export interface UserProfilesTable {
  userId: string
  bio: string | null
  avatarUrl: string | null
  phone: string | null
  locale: string | null
  timezone: string | null
  createdAt: Timestamp
  updatedAt: Timestamp
}

export interface RolesTable {
  id: Generated<string>
  name: string
  description: Generated<string>
  permissions: ColumnType<string[], string[] | undefined, string[]>
  builtIn: Generated<boolean>
  createdAt: Timestamp
  updatedAt: Timestamp
}

export interface UserRolesTable {
  userId: string
  roleId: string
  createdAt: Timestamp
}

export interface UserSessionsTable {
  id: Generated<string>
  userId: string
  userAgent: string | null
  ip: string | null
  createdAt: Timestamp
  lastUsedAt: Timestamp
  expiresAt: Timestamp
  revokedAt: NullableTimestamp
}

export interface RefreshTokensTable {
  id: Generated<string>
  sessionId: string
  userId: string
  tokenHash: string
  createdAt: Timestamp
  expiresAt: Timestamp
  spentAt: NullableTimestamp
}

export interface PasswordResetTokensTable {
  id: Generated<string>
  userId: string
  tokenHash: string
  createdAt: Timestamp
  expiresAt: Timestamp
  usedAt: NullableTimestamp
}

export interface EmailVerificationTokensTable {
  id: Generated<string>
  userId: string
  email: string
  tokenHash: string
  createdAt: Timestamp
  expiresAt: Timestamp
  usedAt: NullableTimestamp
}

export interface UserAuditLogTable {
  id: Generated<string>
  seq: ColumnType<string, never, never>
  action: string
  actorId: string | null
  userId: string | null
  changes: ColumnType<unknown, string | null, string | null>
  ip: string | null
  userAgent: string | null
  requestId: string | null
  createdAt: Timestamp
}

export interface EmailOutboxTable {
  id: Generated<string>
  toAddress: string
  template: 'verify_email' | 'password_reset'
  payload: ColumnType<Record<string, unknown>, string, string>
  createdAt: Timestamp
  sentAt: NullableTimestamp
  attempts: Generated<number>
  lastError: string | null
}

export interface Database {
  users: UsersTable
  userProfiles: UserProfilesTable
  roles: RolesTable
  userRoles: UserRolesTable
  userSessions: UserSessionsTable
  refreshTokens: RefreshTokensTable
  passwordResetTokens: PasswordResetTokensTable
  emailVerificationTokens: EmailVerificationTokensTable
  userAuditLog: UserAuditLogTable
  emailOutbox: EmailOutboxTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type ProfileRow = Selectable<UserProfilesTable>
export type RoleRow = Selectable<RolesTable>
export type SessionRow = Selectable<UserSessionsTable>
export type AuditRow = Selectable<UserAuditLogTable>
export type NewAuditRow = Insertable<UserAuditLogTable>

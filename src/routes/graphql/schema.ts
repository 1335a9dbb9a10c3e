import { buildSchema, printSchema } from 'graphql'
import { USER_SORTS, USER_STATUSES, type UserSort } from '../../../schemas/user.js'

/** GraphQL enum names for the REST sorts: `-createdAt` is CREATED_AT_DESC. */
export const SORT_BY_ENUM: Record<string, UserSort> = Object.fromEntries(USER_SORTS.map(sort => {
  const field = sort.replace('-', '').replace(/[A-Z]/g, c => `_${c}`).toUpperCase()
  return [`${field}_${sort.startsWith('-') ? 'DESC' : 'ASC'}`, sort]
}))

/**
 * The GraphQL schema: the REST API's resources and operations over the same services. Each
 * operation's permission is the REST route's (ACCESS in src/services/context.ts). Committed as
 * openapi/schema.graphql (`npm run openapi`; test/graphql.test.ts fails when it drifts).
 */
export const typeDefs = /* GraphQL */ `
"""
Reads. Each field needs what its REST route needs; a field the caller may not read is null with an
error whose extensions.code is the REST error code (UNAUTHORIZED without a token, FORBIDDEN, NOT_FOUND, ...).
"""
type Query {
  "The caller and its permissions (any signed-in caller; GET /api/v1/auth/me)."
  me: Me
  "A user: the user itself, or a caller with users:read (GET /api/v1/users/{id}). Unknown or deleted: NOT_FOUND."
  user(id: ID!): User
  """
  Users, a page at a time (users:read; GET /api/v1/users). first is 1 to 100. Without after the
  total is exact; with after (keyset paging, stable under inserts) totalCount is null. A cursor only
  works with the sort and filter it was made with.
  """
  users(first: Int = 20, after: String, sort: UserSort = CREATED_AT_ASC, filter: UserFilter): UserConnection
  "Every role, built-in ones included (roles:manage; GET /api/v1/roles)."
  roles: [Role!]
  "The audit trail, newest first, keyset paging (audit:read; GET /api/v1/audit-logs). first is 1 to 100."
  auditLogs(first: Int = 20, after: String, filter: AuditLogFilter): AuditLogConnection
}

"Writes, with the REST routes' rules, audit rows and emails. Only over POST."
type Mutation {
  "Creates a user (users:write; roles and status need roles:manage; POST /api/v1/users). A taken email: EMAIL_TAKEN."
  createUser(input: CreateUserInput!): User
  """
  Changes a user as a merge patch (the user itself or users:write; roles and status need roles:manage;
  PATCH /api/v1/users/{id}). ifMatch: the etag read before; a stale one is PRECONDITION_FAILED.
  """
  updateUser(id: ID!, input: UpdateUserInput!, ifMatch: String): User
  "Soft-deletes a user and revokes its logins (the user itself or users:delete; DELETE /api/v1/users/{id})."
  deleteUser(id: ID!, ifMatch: String): Boolean
  "Restores a soft-deleted user (users:delete; POST /api/v1/users/{id}/restore)."
  restoreUser(id: ID!): User
  "Replaces a user's roles by name; an unknown name is VALIDATION_ERROR (roles:manage; PUT /api/v1/users/{id}/roles)."
  setUserRoles(id: ID!, roles: [String!]!): User
}

type Me {
  user: User!
  permissions: [String!]!
}

"A user; never contains a password or hash. Timestamps are ISO-8601 UTC strings."
type User {
  id: ID!
  "Lower-cased."
  email: String!
  firstName: String!
  lastName: String!
  status: UserStatus!
  emailVerified: Boolean!
  "Role names."
  roles: [String!]!
  "The roles' records (roles:manage, as GET /api/v1/roles); loaded for a whole page at once."
  roleDetails: [Role!]
  profile: Profile
  lastLoginAt: String
  createdAt: String!
  updatedAt: String!
  deletedAt: String
  "The user's ETag, as GET /api/v1/users/{id} sends it: pass it as ifMatch."
  etag: String!
}

enum UserStatus {
  ${USER_STATUSES.join('\n  ')}
}

type Profile {
  bio: String
  avatarUrl: String
  phone: String
  locale: String
  timezone: String
}

type Role {
  id: ID!
  name: String!
  description: String!
  permissions: [String!]!
  "Built-in roles (admin, user) cannot be changed or deleted."
  builtIn: Boolean!
  createdAt: String!
  updatedAt: String!
}

type UserConnection {
  edges: [UserEdge!]!
  pageInfo: PageInfo!
  "Users matching the filter: exact without after, null with it."
  totalCount: Int
}

type UserEdge {
  cursor: String!
  node: User!
}

type PageInfo {
  hasNextPage: Boolean!
  "Paging is forward only: always false."
  hasPreviousPage: Boolean!
  startCursor: String
  "Pass as after for the next page."
  endCursor: String
}

type AuditLogConnection {
  edges: [AuditLogEdge!]!
  pageInfo: PageInfo!
}

type AuditLogEdge {
  cursor: String!
  node: AuditLogEntry!
}

type AuditLogEntry {
  id: ID!
  action: String!
  "The user acting; null when anonymous."
  actorId: ID
  "The user acted upon."
  userId: ID
  "What changed; never a password, hash or token."
  changes: JSON
  ip: String
  userAgent: String
  requestId: String
  createdAt: String!
}

"Any JSON value (output only)."
scalar JSON

enum UserSort {
  ${Object.keys(SORT_BY_ENUM).join('\n  ')}
}

"As the REST list's query parameters; createdAfter and createdBefore are exclusive."
input UserFilter {
  q: String
  role: String
  status: UserStatus
  emailVerified: Boolean
  createdAfter: String
  createdBefore: String
  includeDeleted: Boolean
}

"As the REST audit list's query parameters; from is inclusive, to exclusive."
input AuditLogFilter {
  userId: ID
  actorId: ID
  action: String
  from: String
  to: String
}

"Profile fields; each may be null. Checked as the REST API checks them."
input ProfileInput {
  bio: String
  avatarUrl: String
  phone: String
  locale: String
  timezone: String
}

input CreateUserInput {
  email: String!
  "8 to 128 characters with a lower-case letter, an upper-case letter and a digit; not the email."
  password: String!
  firstName: String!
  lastName: String!
  roles: [String!]
  status: UserStatus
  profile: ProfileInput
}

"Only the fields given change; profile: null removes the profile."
input UpdateUserInput {
  email: String
  firstName: String
  lastName: String
  roles: [String!]
  status: UserStatus
  profile: ProfileInput
}
`

/** The schema as committed in openapi/schema.graphql. */
export const printedSchema = () => printSchema(buildSchema(typeDefs))

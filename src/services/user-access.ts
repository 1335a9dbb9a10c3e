import type { Permission } from '../../schemas/auth.js'
import type { BatchOp } from '../../schemas/user-bulk.js'

/**
 * Who may write a user: the permission each single request needs, and whether the user may do it
 * to itself. The routes' authorize hooks and the batch's per-operation check both read this.
 */
export const USER_ACCESS: Record<BatchOp, { permission: Permission, self: boolean }> = {
  create: { permission: 'users:write', self: false },
  update: { permission: 'users:write', self: true },
  delete: { permission: 'users:delete', self: true },
  restore: { permission: 'users:delete', self: false }
}

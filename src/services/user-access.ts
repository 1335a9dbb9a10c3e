import { ACCESS, type Access } from './context.js'
import type { BatchOp } from '../../schemas/user-bulk.js'

/** The access each batch operation needs: the same as its single request's (ACCESS). */
export const USER_ACCESS: Record<BatchOp, Access> = {
  create: ACCESS.createUser,
  update: ACCESS.updateUser,
  delete: ACCESS.deleteUser,
  restore: ACCESS.restoreUser
}

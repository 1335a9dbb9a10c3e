import type { DB } from '../db/connect.js'
import type { RoleRow } from '../db/types.js'
import { conflict, notFound } from '../errors.js'
import { insertAudit } from '../repositories/audit.js'
import * as roles from '../repositories/roles.js'
import { lockAdministrators } from '../repositories/administrators.js'
import { changesBetween } from '../lib/changes.js'
import { assertAdministratorRemains } from './administrators.js'
import type { Role, RoleInput } from '../../schemas/role.js'
import type { RequestContext } from './context.js'

type Row = Pick<RoleRow, 'id' | 'name' | 'description' | 'permissions' | 'builtIn' | 'createdAt' | 'updatedAt'>

export function toRole (row: Row): Role {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    permissions: [...row.permissions].sort() as Role['permissions'],
    builtIn: row.builtIn,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString()
  }
}

const valuesOf = (input: RoleInput): roles.RoleValues => ({
  name: input.name,
  description: input.description ?? '',
  permissions: [...new Set(input.permissions)].sort()
})

const nameTaken = (name: string) => conflict(`A role named "${name}" already exists`)

/**
 * Roles and their permissions. Built-in roles are fixed. A role that users hold cannot be
 * deleted (409): take it away from them first, so nobody loses permissions as a side effect.
 * Permission checks read roles live (findAuthState), so a change applies from the next request.
 */
export function createRolesService ({ db }: { db: DB }) {
  async function lockCustomRole (trx: Parameters<typeof roles.lockRole>[0], id: string) {
    const role = await roles.lockRole(trx, id)
    if (!role) throw notFound('Role')
    if (role.builtIn) throw conflict(`The built-in role "${role.name}" cannot be changed or deleted`)
    return role
  }

  return {
    async list (): Promise<Role[]> {
      return (await roles.listRoles(db)).map(toRole)
    },

    async get (id: string): Promise<Role> {
      const row = await roles.findRoleById(db, id)
      if (!row) throw notFound('Role')
      return toRole(row)
    },

    async create (ctx: RequestContext, input: RoleInput): Promise<Role> {
      const values = valuesOf(input)
      return db.transaction().execute(async trx => {
        // A racing insert of the same name still ends in 409: the unique index maps to CONFLICT.
        if (await roles.findRoleByName(trx, values.name)) throw nameTaken(values.name)
        const role = toRole(await roles.insertRole(trx, values))
        await insertAudit(trx, ctx, { action: 'role.created', userId: null, changes: { roleId: role.id, ...values } })
        return role
      })
    },

    async replace (ctx: RequestContext, id: string, input: RoleInput): Promise<Role> {
      const values = valuesOf(input)
      return db.transaction().execute(async trx => {
        // Taken first, as the users service does, so the two never wait on each other in opposite orders.
        await lockAdministrators(trx)
        const before = toRole(await lockCustomRole(trx, id))
        if (values.name !== before.name && await roles.findRoleByName(trx, values.name)) throw nameTaken(values.name)
        const after = toRole(await roles.updateRole(trx, id, values))
        await assertAdministratorRemains(trx)
        const changes = { roleId: id, ...changesBetween(before, after, ['name', 'description', 'permissions']) }
        await insertAudit(trx, ctx, { action: 'role.updated', userId: null, changes })
        return after
      })
    },

    async remove (ctx: RequestContext, id: string): Promise<void> {
      await db.transaction().execute(async trx => {
        const role = await lockCustomRole(trx, id)
        const holders = await roles.countRoleHolders(trx, id)
        if (holders > 0) throw conflict(`The role "${role.name}" is held by ${holders} user(s); remove it from them first`)
        await roles.deleteRole(trx, id)
        await insertAudit(trx, ctx, { action: 'role.deleted', userId: null, changes: { roleId: id, name: role.name } })
      })
    }
  }
}

export type RolesService = ReturnType<typeof createRolesService>

import { GraphQLScalarType } from 'graphql'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import type { MercuriusContext } from 'mercurius'
import type { TSchema } from '@sinclair/typebox'
import { unauthorized, validationError } from '../../errors.js'
import { etagOf } from '../../lib/etag.js'
import { ACCESS, authorizeActor, type Access, type RequestContext } from '../../services/context.js'
import { validationDetails } from '../../lib/validation.js'
import { IdParamsSchema } from '../../../schemas/common.js'
import { UserCreateSchema, UserListQuerySchema, UserPatchSchema, UserRolesSchema, type User, type UserListQuery } from '../../../schemas/user.js'
import { AuditListQuerySchema, type AuditListQuery } from '../../../schemas/audit.js'
import { SORT_BY_ENUM } from './schema.js'

export interface GraphqlContext extends MercuriusContext { caller: RequestContext }

type Args = Record<string, unknown>
type ValidateFunction = ((value: unknown) => boolean) & { errors?: Parameters<typeof validationDetails>[0] | null }

/** Drops what a GraphQL client sends as null for "not given" (after: null on a first page). */
const given = (values: Args) => Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== null))

/** A page of a connection: an edge per node with its own cursor, as the REST list's nextCursor is made. */
function connection<T> (nodes: T[], cursorAt: (index: number) => string, hasNextPage: boolean) {
  const edges = nodes.map((node, index) => ({ node, cursor: cursorAt(index) }))
  return {
    edges,
    pageInfo: { hasNextPage, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null }
  }
}

/** Output only (audit changes): a value is sent as it is; nothing takes JSON as input. */
const JsonScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value (output only).',
  serialize: value => value,
  parseValue: () => { throw validationError('JSON is not accepted as input') },
  parseLiteral: () => { throw validationError('JSON is not accepted as input') }
})

/**
 * Resolvers over the REST API's services. Each runs what its REST route runs, in the same
 * order: the caller (401), its input against the same TypeBox schema (400), its permission from
 * ACCESS (403), then the same service call; errors keep their REST codes (errors.ts).
 */
export function createResolvers (fastify: FastifyInstance, compile: FastifySchemaCompiler<TSchema>) {
  const { usersService, rolesService, auditService, authService } = fastify

  /** The route schema's checks, as the REST route runs them, with details named after the GraphQL arguments. */
  function checker<T> (schema: TSchema, fieldOf: (name: string) => string) {
    const validate = compile({ schema, method: 'POST', url: '/graphql', httpPart: 'body' }) as ValidateFunction
    return (value: Args): T => {
      if (validate(value)) return value as T
      const details = validationDetails(validate.errors ?? []).map(d => d.field ? { ...d, field: fieldOf(d.field) } : d)
      throw validationError('The arguments are invalid', details)
    }
  }
  const PAGING: Record<string, string> = { limit: 'first', cursor: 'after', sort: 'sort' }
  const inFilter = (name: string) => PAGING[name.split('.')[0]] ?? `filter.${name}`
  const checkId = checker<{ id: string }>(IdParamsSchema, name => name)
  const checkUserList = checker<UserListQuery>(UserListQuerySchema, inFilter)
  const checkAuditList = checker<AuditListQuery>(AuditListQuerySchema, inFilter)
  const checkCreate = checker<Parameters<typeof usersService.create>[1]>(UserCreateSchema, name => `input.${name}`)
  const checkPatch = checker<Parameters<typeof usersService.patch>[2]>(UserPatchSchema, name => `input.${name}`)
  const checkRoles = checker<{ roles: string[] }>(UserRolesSchema, name => name)

  /** As a REST route runs its hooks: who calls (401), then whether the input is valid (400), then whether it may (403). */
  function guard<T> ({ caller }: GraphqlContext, access: Access | null, input: () => T, targetId?: string) {
    const actor = caller.actor
    if (!actor) throw unauthorized()
    const value = input()
    if (access) authorizeActor(actor, access, targetId)
    return { actor, value }
  }

  const userId = (ctx: GraphqlContext, args: Args, access: Access) => {
    const { value } = guard(ctx, access, () => checkId({ id: args.id }), args.id as string)
    return value.id
  }

  return {
    JSON: JsonScalar,
    Query: {
      async me (_root: unknown, _args: Args, ctx: GraphqlContext) {
        const { actor } = guard(ctx, null, () => undefined)
        const { permissions, ...user } = await authService.me(actor.id, actor.permissions)
        return { user, permissions }
      },
      async user (_root: unknown, args: Args, ctx: GraphqlContext) {
        return (await usersService.get(userId(ctx, args, ACCESS.getUser), ctx.caller)).user
      },
      async users (_root: unknown, args: Args, ctx: GraphqlContext) {
        const { actor, value } = guard(ctx, ACCESS.listUsers, () => checkUserList(given({
          limit: args.first, cursor: args.after, sort: SORT_BY_ENUM[args.sort as string], ...given((args.filter ?? {}) as Args)
        })))
        const { data, pagination, cursorAt } = await usersService.list(value, actor.id)
        return { ...connection(data as User[], cursorAt, pagination.hasNext), totalCount: pagination.total }
      },
      async roles (_root: unknown, _args: Args, ctx: GraphqlContext) {
        guard(ctx, ACCESS.manageRoles, () => undefined)
        return rolesService.list()
      },
      async auditLogs (_root: unknown, args: Args, ctx: GraphqlContext) {
        const { actor, value } = guard(ctx, ACCESS.readAudit, () => checkAuditList(given({
          limit: args.first, cursor: args.after, ...given((args.filter ?? {}) as Args)
        })))
        const { data, pagination, cursorAt } = await auditService.list(value, actor.id)
        return connection(data, cursorAt, pagination.hasNext)
      }
    },
    Mutation: {
      async createUser (_root: unknown, args: Args, ctx: GraphqlContext) {
        const { value } = guard(ctx, ACCESS.createUser, () => checkCreate({ ...(args.input as Args) }))
        return usersService.create(ctx.caller, value)
      },
      async updateUser (_root: unknown, args: Args, ctx: GraphqlContext) {
        const { value } = guard(ctx, ACCESS.updateUser, () => ({ ...checkId({ id: args.id }), body: checkPatch({ ...(args.input as Args) }) }), args.id as string)
        return usersService.patch(ctx.caller, value.id, value.body, (args.ifMatch as string | null) ?? undefined)
      },
      async deleteUser (_root: unknown, args: Args, ctx: GraphqlContext) {
        await usersService.remove(ctx.caller, userId(ctx, args, ACCESS.deleteUser), (args.ifMatch as string | null) ?? undefined)
        return true
      },
      async restoreUser (_root: unknown, args: Args, ctx: GraphqlContext) {
        return usersService.restore(ctx.caller, userId(ctx, args, ACCESS.restoreUser))
      },
      async setUserRoles (_root: unknown, args: Args, ctx: GraphqlContext) {
        const { value } = guard(ctx, ACCESS.setUserRoles, () => ({ ...checkId({ id: args.id }), ...checkRoles({ roles: args.roles }) }), args.id as string)
        return usersService.setRoles(ctx.caller, value.id, value.roles)
      }
    },
    User: {
      etag: (user: User) => etagOf(user)
    }
  }
}

/**
 * Batched per-user fields (mercurius loaders): every User.roleDetails of one request is resolved
 * by one call, so a page of users costs one roles query however long it is.
 */
export function createLoaders (fastify: FastifyInstance) {
  return {
    User: {
      async roleDetails (queries: Array<{ obj: User }>, ctx: GraphqlContext) {
        if (!ctx.caller.actor) throw unauthorized()
        authorizeActor(ctx.caller.actor, ACCESS.manageRoles)
        const byName = new Map((await fastify.rolesService.list()).map(role => [role.name, role]))
        return queries.map(({ obj }) => obj.roles.flatMap(name => byName.get(name) ?? []))
      }
    }
  }
}

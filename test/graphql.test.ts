import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail, type TestUser } from './helper.js'
import { generateGraphqlSchema } from '../src/cli/openapi.js'
import { PERMISSIONS } from '../schemas/auth.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const plain = await createUser(app)
const other = await createUser(app)
const system = { actor: { id: randomUUID(), sessionId: null, permissions: new Set(['users:write', 'roles:manage']) }, actorId: null, ip: null, userAgent: null, requestId: 'test' }
const readerRole = `gql-reader-${randomUUID().slice(0, 8)}`
await app.rolesService.create(system, { name: readerRole, permissions: ['users:read'] })
const reader = await createUser(app, { roles: [readerRole] })

interface GraphqlError { message: string, path?: Array<string | number>, extensions: { code: string, details?: Array<{ field?: string, message: string }> } }
interface Answer { res: LightMyRequestResponse, data: any, errors: GraphqlError[] }

async function gql (query: string, variables?: Record<string, unknown>, user: TestUser | null = admin, target: FastifyInstance = app): Promise<Answer> {
  const res = await as(target, user ?? undefined, { method: 'POST', url: '/graphql', payload: { query, ...(variables ? { variables } : {}) } })
  const body = res.statusCode === 200 ? res.json() : {}
  return { res, data: body.data, errors: body.errors ?? [] }
}

/** The one error of an executed answer: 200, the field null, extensions.code as REST would answer. */
function assertFieldError (t: Test, answer: Answer, field: string, code: string) {
  t.equal(answer.res.statusCode, 200, `${field} ${code}: still 200`)
  t.equal(answer.data?.[field], null, `${field} ${code}: null`)
  t.equal(answer.errors.length, 1, `${field} ${code}: one error (${JSON.stringify(answer.errors).slice(0, 300)})`)
  t.equal(answer.errors[0]?.extensions.code, code, `${field} ${code}: extensions.code`)
  t.same(answer.errors[0]?.path, [field], `${field} ${code}: path`)
  return answer.errors[0]
}

const USER_FIELDS = 'id email firstName lastName status emailVerified roles profile { bio avatarUrl phone locale timezone } lastLoginAt createdAt updatedAt deletedAt'
const restUser = async (id: string) => (await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` }))

t.test('me: the caller and its permissions; without a token only that field fails, UNAUTHORIZED', async t => {
  const mine = await gql(`{ me { user { ${USER_FIELDS} } permissions } }`, undefined, plain)
  t.equal(mine.res.statusCode, 200)
  t.same(mine.errors, [])
  const rest = (await as(app, plain, { method: 'GET', url: '/api/v1/auth/me' })).json().data
  const { permissions, ...user } = rest
  t.same(mine.data.me, { user, permissions })
  // The admin (the default caller) has every permission of the catalogue.
  t.same((await gql('{ me { permissions } }')).data.me.permissions, [...PERMISSIONS].sort())

  const anonymous = await gql('{ me { user { id } } }', undefined, null)
  assertFieldError(t, anonymous, 'me', 'UNAUTHORIZED')
  t.notOk(anonymous.res.headers['www-authenticate'], 'no token needed to ask')
})

t.test('a bad token is refused as REST refuses it: 401 in the error envelope', async t => {
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { authorization: 'Bearer not.a.jwt' }, payload: { query: '{ me { permissions } }' } })
  assertError(t, res, 401, 'UNAUTHORIZED')
})

t.test('user(id): itself or users:read, as GET /api/v1/users/:id; codes match REST', async t => {
  const self = await gql(`query ($id: ID!) { user(id: $id) { ${USER_FIELDS} etag } }`, { id: plain.id }, plain)
  t.same(self.errors, [])
  const rest = await restUser(plain.id)
  const { etag, ...user } = self.data.user
  t.same(user, rest.json().data, 'the same user as REST')
  t.equal(etag, rest.headers.etag, 'the same ETag')
  t.equal((await gql('query ($id: ID!) { user(id: $id) { id } }', { id: plain.id }, reader)).data.user.id, plain.id, 'users:read reads others')

  // Each refusal next to what the REST route answers for the same caller and id.
  const cases: Array<[string, TestUser | undefined, string, number, string]> = [
    ['another user', plain, other.id, 403, 'FORBIDDEN'],
    ['anonymous', undefined, other.id, 401, 'UNAUTHORIZED'],
    ['unknown', admin, randomUUID(), 404, 'NOT_FOUND'],
    ['malformed', admin, 'not-a-uuid', 400, 'VALIDATION_ERROR']
  ]
  for (const [what, caller, id, status, code] of cases) {
    assertError(t, await as(app, caller, { method: 'GET', url: `/api/v1/users/${id}` }), status, code, `REST: ${what}`)
    const error = assertFieldError(t, await gql('query ($id: ID!) { user(id: $id) { id } }', { id }, caller ?? null), 'user', code)
    if (code === 'VALIDATION_ERROR') t.same(error.extensions.details, [{ message: 'must match format "uuid"', field: 'id' }], 'with the detail')
  }
})

t.test('users: a connection with cursors over the keyset paging of GET /api/v1/users', async t => {
  const tag = `Gqlpage${randomUUID().slice(0, 8)}`
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await createUser(app, { lastName: tag })).id)
  const page = 'edges { cursor node { id lastName } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount'
  const query = `query ($after: String, $sort: UserSort) { users(first: 2, after: $after, sort: $sort, filter: { q: "${tag}", includeDeleted: null }) { ${page} } }`

  const seen: string[] = []
  let after: string | null = null
  let pages = 0
  do {
    const { data, errors } = await gql(query, { after })
    t.same(errors, [])
    const { edges, pageInfo, totalCount } = data.users
    t.equal(totalCount, after === null ? 5 : null, 'exact total on the first page, null in keyset mode (as REST)')
    t.equal(pageInfo.startCursor, edges[0].cursor)
    t.equal(pageInfo.endCursor, edges.at(-1).cursor)
    t.equal(pageInfo.hasPreviousPage, false)
    seen.push(...edges.map((e: { node: { id: string } }) => e.node.id))
    after = pageInfo.hasNextPage ? pageInfo.endCursor : null
    pages++
  } while (after !== null && pages < 5)
  t.equal(pages, 3, '5 users in pages of 2')
  t.same(seen, ids, 'every user once, in createdAt order')

  // Every edge's cursor continues after its own node; the REST list takes the same cursors.
  const first = (await gql(query, {})).data.users.edges
  const fromFirst = (await gql(query, { after: first[0].cursor })).data.users.edges
  t.equal(fromFirst[0].node.id, ids[1], 'after the first edge comes the second user')
  const rest = await as(app, admin, { method: 'GET', url: `/api/v1/users?limit=2&q=${tag}&cursor=${first[1].cursor}` })
  t.same(rest.json().data.map((u: { id: string }) => u.id), ids.slice(2, 4), 'REST pages on from a GraphQL cursor')

  const descending = (await gql(query, { sort: 'CREATED_AT_DESC' })).data.users.edges.map((e: { node: { id: string } }) => e.node.id)
  t.same(descending, [ids[4], ids[3]], 'sort')
  const mismatch = await gql(query, { after: first[1].cursor, sort: 'EMAIL_ASC' })
  t.equal(assertFieldError(t, mismatch, 'users', 'VALIDATION_ERROR').extensions.details?.[0]?.field, 'cursor', 'a cursor of another sort is refused, as REST refuses it')
  t.equal(assertFieldError(t, await gql('{ users(first: 101) { totalCount } }'), 'users', 'VALIDATION_ERROR').extensions.details?.[0]?.field, 'first', 'first is at most 100')
  t.equal(assertFieldError(t, await gql('{ users(filter: { createdAfter: "yesterday" }) { totalCount } }'), 'users', 'VALIDATION_ERROR').extensions.details?.[0]?.field, 'filter.createdAfter')

  assertError(t, await as(app, plain, { method: 'GET', url: '/api/v1/users' }), 403, 'FORBIDDEN', 'REST')
  assertFieldError(t, await gql('{ users { totalCount } }', undefined, plain), 'users', 'FORBIDDEN')
  assertFieldError(t, await gql('{ users { totalCount } }', undefined, null), 'users', 'UNAUTHORIZED')
})

t.test('roles and roleDetails need roles:manage; auditLogs audit:read, with cursors', async t => {
  const { data, errors } = await gql('query ($id: ID!) { roles { name builtIn permissions } user(id: $id) { roles roleDetails { name permissions } } }', { id: reader.id })
  t.same(errors, [])
  t.same(data.roles.map((r: { name: string }) => r.name), (await as(app, admin, { method: 'GET', url: '/api/v1/roles' })).json().data.map((r: { name: string }) => r.name))
  t.same(data.user, { roles: [readerRole], roleDetails: [{ name: readerRole, permissions: ['users:read'] }] })

  assertError(t, await as(app, reader, { method: 'GET', url: '/api/v1/roles' }), 403, 'FORBIDDEN', 'REST')
  assertFieldError(t, await gql('{ roles { name } }', undefined, reader), 'roles', 'FORBIDDEN')
  const partial = await gql('query ($id: ID!) { user(id: $id) { id roleDetails { name } } }', { id: reader.id }, reader)
  t.same(partial.data, { user: { id: reader.id, roleDetails: null } }, 'the rest of the user is answered')
  t.match(partial.errors, [{ path: ['user', 'roleDetails'], extensions: { code: 'FORBIDDEN' } }])

  const audit = `query ($after: String, $userId: ID) { auditLogs(first: 1, after: $after, filter: { userId: $userId }) {
    edges { cursor node { id action actorId userId changes requestId createdAt } } pageInfo { hasNextPage endCursor } } }`
  const firstPage = await gql(audit, { userId: plain.id })
  t.same(firstPage.errors, [])
  const rest = (await as(app, admin, { method: 'GET', url: `/api/v1/audit-logs?userId=${plain.id}&limit=2` })).json()
  t.same(firstPage.data.auditLogs.edges[0].node, (({ ip: _ip, userAgent: _ua, ...entry }) => entry)(rest.data[0]), 'the newest entry, as REST has it')
  t.equal(firstPage.data.auditLogs.pageInfo.hasNextPage, true)
  const second = await gql(audit, { userId: plain.id, after: firstPage.data.auditLogs.pageInfo.endCursor })
  t.equal(second.data.auditLogs.edges[0].node.id, rest.data[1].id, 'the next page goes on from endCursor')
  assertError(t, await as(app, reader, { method: 'GET', url: '/api/v1/audit-logs' }), 403, 'FORBIDDEN', 'REST')
  assertFieldError(t, await gql('{ auditLogs { pageInfo { hasNextPage } } }', undefined, reader), 'auditLogs', 'FORBIDDEN')
  t.equal(assertFieldError(t, await gql('{ auditLogs(filter: { userId: "x" }) { pageInfo { hasNextPage } } }'), 'auditLogs', 'VALIDATION_ERROR').extensions.details?.[0]?.field, 'filter.userId')
})

t.test('createUser: the REST rules, audit row and errors', async t => {
  const email = uniqueEmail('Gql.Create')
  const create = 'mutation ($input: CreateUserInput!) { createUser(input: $input) { id email roles status emailVerified profile { locale } } }'
  const made = await gql(create, { input: { email, password: PASSWORD, firstName: 'Graph', lastName: 'Ql', profile: { locale: 'en-GB' } } })
  t.same(made.errors, [])
  t.match(made.data.createUser, { email: email.toLowerCase(), roles: ['user'], status: 'active', emailVerified: false, profile: { locale: 'en-GB' } })
  const id = made.data.createUser.id
  t.equal((await restUser(id)).statusCode, 200, 'REST sees the user')
  const audit = (await as(app, admin, { method: 'GET', url: `/api/v1/audit-logs?userId=${id}&action=user.created` })).json().data
  t.match(audit, [{ action: 'user.created', actorId: admin.id, userId: id }], 'audited with the caller as actor')

  t.equal(assertFieldError(t, await gql(create, { input: { email, password: PASSWORD, firstName: 'A', lastName: 'B' } }), 'createUser', 'EMAIL_TAKEN').extensions.details?.[0]?.field, 'email')
  const weak = assertFieldError(t, await gql(create, { input: { email: uniqueEmail(), password: 'short', firstName: 'A', lastName: 'B' } }), 'createUser', 'VALIDATION_ERROR')
  t.ok(weak.extensions.details?.every(d => d.field === 'password'), 'the password policy details')
  const badEmail = assertFieldError(t, await gql(create, { input: { email: 'nope', password: PASSWORD, firstName: 'A', lastName: 'B' } }), 'createUser', 'VALIDATION_ERROR')
  t.same(badEmail.extensions.details?.map(d => d.field), ['input.email'], 'the REST schema checks, named after the argument')
  assertFieldError(t, await gql(create, { input: { email: uniqueEmail(), password: PASSWORD, firstName: 'A', lastName: 'B' } }, plain), 'createUser', 'FORBIDDEN')
  assertError(t, await as(app, plain, { method: 'POST', url: '/api/v1/users', payload: { email: uniqueEmail(), password: PASSWORD, firstName: 'A', lastName: 'B' } }), 403, 'FORBIDDEN', 'REST')
})

t.test('updateUser, setUserRoles, deleteUser, restoreUser: permissions and rules as on REST', async t => {
  const target = await createUser(app)
  const update = 'mutation ($id: ID!, $input: UpdateUserInput!, $ifMatch: String) { updateUser(id: $id, input: $input, ifMatch: $ifMatch) { id firstName roles etag } }'
  const { etag } = (await gql('query ($id: ID!) { user(id: $id) { etag } }', { id: target.id }, target)).data.user
  const renamed = await gql(update, { id: target.id, input: { firstName: 'Renamed' }, ifMatch: etag }, target)
  t.same(renamed.errors, [])
  t.equal(renamed.data.updateUser.firstName, 'Renamed', 'a user changes itself')
  t.equal(renamed.data.updateUser.etag, (await restUser(target.id)).headers.etag, 'the new ETag')
  assertFieldError(t, await gql(update, { id: target.id, input: { firstName: 'Again' }, ifMatch: etag }, target), 'updateUser', 'PRECONDITION_FAILED')
  assertFieldError(t, await gql(update, { id: target.id, input: { roles: ['admin'] } }, target), 'updateUser', 'FORBIDDEN')
  assertError(t, await as(app, target, { method: 'PATCH', url: `/api/v1/users/${target.id}`, payload: { roles: ['admin'] } }), 403, 'FORBIDDEN', 'REST: roles need roles:manage')
  assertFieldError(t, await gql(update, { id: target.id, input: { firstName: 'X' } }, plain), 'updateUser', 'FORBIDDEN')
  const empty = assertFieldError(t, await gql(update, { id: target.id, input: { firstName: '' } }), 'updateUser', 'VALIDATION_ERROR')
  t.ok(empty.extensions.details?.length && empty.extensions.details.every(d => d.field === 'input.firstName'), 'the REST schema checks, named after the argument')

  const setRoles = 'mutation ($id: ID!, $roles: [String!]!) { setUserRoles(id: $id, roles: $roles) { roles } }'
  t.same((await gql(setRoles, { id: target.id, roles: ['user', readerRole] })).data.setUserRoles.roles.sort(), [readerRole, 'user'].sort())
  t.equal(assertFieldError(t, await gql(setRoles, { id: target.id, roles: ['no-such-role'] }), 'setUserRoles', 'VALIDATION_ERROR').extensions.details?.[0]?.field, 'roles')
  assertFieldError(t, await gql(setRoles, { id: target.id, roles: ['user'] }, target), 'setUserRoles', 'FORBIDDEN')

  const remove = 'mutation ($id: ID!) { deleteUser(id: $id) }'
  const restore = 'mutation ($id: ID!) { restoreUser(id: $id) { id deletedAt } }'
  assertFieldError(t, await gql(remove, { id: target.id }, plain), 'deleteUser', 'FORBIDDEN')
  t.same((await gql(remove, { id: target.id })).data, { deleteUser: true })
  assertError(t, await restUser(target.id), 404, 'NOT_FOUND', 'REST: gone')
  assertFieldError(t, await gql('query ($id: ID!) { user(id: $id) { id } }', { id: target.id }), 'user', 'NOT_FOUND')
  assertFieldError(t, await gql(remove, { id: target.id }), 'deleteUser', 'NOT_FOUND')
  assertFieldError(t, await gql(restore, { id: target.id }, plain), 'restoreUser', 'FORBIDDEN')
  t.same((await gql(restore, { id: target.id })).data.restoreUser, { id: target.id, deletedAt: null })
  t.equal((await restUser(target.id)).statusCode, 200, 'REST: back')

  // Two mutations in one request: each is answered on its own.
  const both = await gql('mutation ($id: ID!) { ok: restoreUser(id: $id) { id } refused: setUserRoles(id: $id, roles: ["nope-role"]) { id } }', { id: target.id })
  t.same(both.data, { ok: { id: target.id }, refused: null })
  t.match(both.errors, [{ path: ['refused'], extensions: { code: 'VALIDATION_ERROR' } }])
})

t.test('a document that does not parse, validate or fit its variables is 400 in the error envelope', async t => {
  const post = (payload: unknown, headers = {}) => as(app, admin, { method: 'POST', url: '/graphql', payload: payload as object, headers })
  const cases: Array<[string, unknown, string]> = [
    ['syntax', { query: '{ me { ' }, 'query'],
    ['unknown field', { query: '{ me { password } }' }, 'query'],
    ['variable of the wrong type', { query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id: { a: 1 } } }, 'variables'],
    ['missing variable', { query: 'query ($id: ID!) { user(id: $id) { id } }' }, 'variables'],
    ['a JSON syntax tree instead of GraphQL', { query: '{"kind":"Document","definitions":[]}' }, 'query'],
    ['JSON null', { query: 'null' }, 'query'],
    ['no query', {}, 'query'],
    ['unknown body property', { query: '{ me { permissions } }', root: true }, 'root'],
    ['operation not in the document', { query: 'query A { me { permissions } }', operationName: 'B' }, 'operationName'],
    ['several operations, none named', { query: 'query A { me { permissions } } query B { me { permissions } }' }, 'operationName'],
    ['subscription', { query: 'subscription { me }' }, 'query']
  ]
  for (const [what, payload, field] of cases) {
    const error = assertError(t, await post(payload), 400, 'VALIDATION_ERROR', what)
    t.ok(error.details?.some(d => d.field === field), `${what}: a detail for ${field} (${JSON.stringify(error.details)})`)
  }
  assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: '{ me { id } }', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE')
})

t.test('depth: more than 8 levels of fields are refused; introspection is not counted', async t => {
  const nested = (levels: number) => Array.from({ length: levels }, (_, i) => `f${i}`).reduceRight((inner, field) => `${field} { ${inner} }`, 'leaf')
  const nine = assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: `{ ${nested(8)} }` } }), 400, 'VALIDATION_ERROR', '9 levels')
  t.match(nine.message, /deeper than 8/)
  const eight = assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: `{ ${nested(7)} }` } }), 400, 'VALIDATION_ERROR', '8 levels of unknown fields')
  t.match(eight.details?.[0]?.message, /Cannot query field "f0"/, '8 levels pass the depth check (and fail only as unknown fields)')
  const fragments = `{ ...A } fragment A on Query { ${nested(4).replace('leaf', '...B')} } fragment B on Query { ${nested(5)} }`
  t.match(assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: fragments } }), 400, 'VALIDATION_ERROR', 'through fragments').message, /deeper than 8/)
  const cycle = assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }' } }), 400, 'VALIDATION_ERROR', 'a fragment cycle')
  t.match(cycle.details?.[0]?.message, /Cannot spread fragment/)

  const deepest = await gql('{ users(first: 1) { edges { node { roleDetails { name } } } } }')
  t.same(deepest.errors, [], 'the deepest data the schema has (5 levels) answers')
  const introspection = await gql(getIntrospectionQuery())
  t.same(introspection.errors, [], 'the full introspection query (GraphiQL\'s) answers')
  t.ok(introspection.data.__schema.types.length > 10)
})

t.test('cost: each field 1, a page its size times one item; over GRAPHQL_MAX_COST is refused', async t => {
  const page = (first: number) => `users(first: ${first}) { edges { cursor node { id email roles roleDetails { id name description permissions builtIn createdAt updatedAt } } } }`
  t.same((await gql(`{ ${page(10)} }`)).errors, [], 'a page of 10 with role details costs 1 + 10 x 147')
  const costly = assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: `{ ${page(100)} }` } }), 400, 'VALIDATION_ERROR', 'a page of 100 with role details')
  t.match(costly.message, /The query costs 14701, more than the limit of 5000/)
  const aliases = Array.from({ length: 5 }, (_, i) => `p${i}: ${page(10)}`).join(' ')
  t.match(assertError(t, await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: `{ ${aliases} }` } }), 400, 'VALIDATION_ERROR', 'aliases add up').message, /costs 7\d{3}/)
  const byVariable = await as(app, admin, { method: 'POST', url: '/graphql', payload: { query: 'query ($n: Int) { ' + page(1).replace('first: 1', 'first: $n') + ' }', variables: { n: 100 } } })
  assertError(t, byVariable, 400, 'VALIDATION_ERROR', 'a page size given as a variable counts too')
})

t.test('GET runs queries, with variables; a mutation over GET is 405', async t => {
  const url = (params: Record<string, string>) => `/graphql?${new URLSearchParams(params)}`
  const got = await as(app, plain, { method: 'GET', url: url({ query: 'query ($id: ID!) { user(id: $id) { id } }', variables: JSON.stringify({ id: plain.id }) }) })
  t.equal(got.statusCode, 200)
  t.same(got.json(), { data: { user: { id: plain.id } } })
  t.ok(got.headers['x-ratelimit-limit'], 'rate limited as /api/v1 is')

  const mutation = await as(app, admin, { method: 'GET', url: url({ query: `mutation { deleteUser(id: "${other.id}") }` }) })
  assertError(t, mutation, 405, 'METHOD_NOT_ALLOWED')
  t.equal(mutation.headers.allow, 'POST')
  t.equal((await restUser(other.id)).statusCode, 200, 'and nothing was deleted')
  const named = await as(app, admin, { method: 'GET', url: url({ query: 'query Q { me { permissions } } mutation M { deleteUser(id: "x") }', operationName: 'M' }) })
  assertError(t, named, 405, 'METHOD_NOT_ALLOWED', 'the named operation is the mutation')
  t.equal((await as(app, admin, { method: 'GET', url: url({ query: 'query Q { me { permissions } } mutation M { deleteUser(id: "x") }', operationName: 'Q' }) })).statusCode, 200, 'the named operation is the query')
  for (const [what, params, field] of [
    ['variables that are not JSON', { query: '{ me { permissions } }', variables: '{nope' }, 'variables'],
    ['an unknown operationName', { query: '{ me { permissions } }', operationName: 'Nope' }, 'operationName'],
    ['a syntax error', { query: '{ me {' }, 'query']
  ] as const) {
    const error = assertError(t, await as(app, admin, { method: 'GET', url: url(params) }), 400, 'VALIDATION_ERROR', what)
    t.ok(error.details?.some(d => d.field === field), `${what}: detail for ${field} (${JSON.stringify(error.details)})`)
  }
})

t.test('a page of 50 users with their roles costs the same SQL statements as a page of 5', async t => {
  const tag = `Gqlcount${randomUUID().slice(0, 8)}`
  for (let i = 0; i < 50; i++) {
    await app.usersService.create(system, { email: uniqueEmail('gqlcount'), password: PASSWORD, firstName: 'Count', lastName: tag, roles: i % 2 ? ['user', readerRole] : ['user'] })
  }
  const statements = async () => {
    const metric = await app.metrics.getSingleMetric('db_query_duration_seconds')?.get()
    return (metric?.values ?? [] as Array<{ metricName?: string, value: number }>).filter(v => (v as { metricName?: string }).metricName === 'db_query_duration_seconds_count').reduce((sum, v) => sum + v.value, 0)
  }
  const query = `query ($n: Int) { users(first: $n, filter: { q: "${tag}" }) { totalCount edges { node { id email roles roleDetails { name permissions } } } } }`
  // The fewest statements of three runs: background work (the job queue) may add to one.
  const cost = async (n: number) => {
    const counts: number[] = []
    for (let run = 0; run < 3; run++) {
      const before = await statements()
      // Over GET: a POST also clears this instance's cached login states (a mutation may change them), which adds a lookup.
      const res = await as(app, admin, { method: 'GET', url: `/graphql?${new URLSearchParams({ query, variables: JSON.stringify({ n }) })}` })
      const { data, errors } = res.json()
      t.same(errors, undefined)
      t.equal(data.users.edges.length, n)
      counts.push(await statements() - before)
    }
    return Math.min(...counts)
  }
  const five = await cost(5)
  const fifty = await cost(50)
  t.equal(fifty, five, `50 users cost ${fifty} statements, 5 users ${five}`)
  t.equal(fifty, 3, 'the page, its total and the roles (the login\'s state is cached)')
  t.comment(`statements for a page of 50 users with roles and role details: ${fifty}`)
})

t.test('production serves no GraphiQL; GRAPHQL_MAX_COST and the rate limit apply', async t => {
  t.equal((await app.inject({ method: 'GET', url: '/graphiql' })).statusCode, 200, 'GraphiQL outside production')
  const prod = await build(t, { production: true, graphqlMaxCost: 3, rateLimitMax: 4 })
  assertError(t, await prod.inject({ method: 'GET', url: '/graphiql' }), 404, 'NOT_FOUND')
  const user = await createUser(prod)
  t.same((await gql('{ me { permissions } }', undefined, user, prod)).errors, [], 'cost 3: answered')
  t.match(assertError(t, (await gql('{ me { permissions user { id } } }', undefined, user, prod)).res, 400, 'VALIDATION_ERROR').message, /costs 4, more than the limit of 3/)
  for (let i = 0; i < 2; i++) t.equal((await gql('{ me { permissions } }', undefined, user, prod)).res.statusCode, 200, `request ${i + 3} of 4`)
  const limited = await gql('{ me { permissions } }', undefined, user, prod)
  assertError(t, limited.res, 429, 'RATE_LIMITED', 'the fifth request of the window')
  t.ok(Number(limited.res.headers['retry-after']) > 0, 'with Retry-After')
})

t.test('the committed schema is what the code generates, and what the service serves', async t => {
  const committed = await readFile(new URL('../openapi/schema.graphql', import.meta.url), 'utf8')
  t.ok(generateGraphqlSchema() === committed, 'openapi/schema.graphql is stale: run `npm run openapi` and commit it')
  const { data } = await gql(getIntrospectionQuery({ descriptions: true }))
  t.equal(`${printSchema(buildClientSchema(data))}\n`, committed, 'introspection of the running service gives the committed schema')
})

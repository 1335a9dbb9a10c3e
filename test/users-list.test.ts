import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { as, assertError, build, createUser, PASSWORD } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })
const db = app.database.db

interface ListedUser { id: string, email: string, lastName: string, createdAt: string, deletedAt?: string | null, [key: string]: unknown }

/** A tag unique to this run: every list below filters on it (q), so rows of other tests never interfere. */
const newTag = (prefix: string) => `${prefix}${randomUUID().replaceAll('-', '').slice(0, 10)}`

async function create (payload: Record<string, unknown>): Promise<ListedUser> {
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { password: PASSWORD, firstName: 'List', ...payload } })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json().data
}

type Query = Record<string, string | number | boolean | undefined>
const queryString = (query: Query) => new URLSearchParams(Object.entries(query).flatMap(([k, v]) => v === undefined ? [] : [[k, String(v)] as [string, string]])).toString()

const list = (query: Query) => as(app, admin, { method: 'GET', url: `/api/v1/users?${queryString(query)}` })

async function listOk (t: Test, query: Query) {
  const res = await list(query)
  t.equal(res.statusCode, 200, `GET ?${queryString(query)}`)
  if (res.statusCode !== 200) t.comment(res.body)
  return res.json() as { success: true, data: ListedUser[], pagination: { page: number | null, limit: number, total: number | null, totalPages: number | null, hasNext: boolean, nextCursor: string | null } }
}

const byKey = (key: 'createdAt' | 'email' | 'lastName', descending: boolean) => (a: ListedUser, b: ListedUser) => {
  const order = a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  return descending ? -order : order
}
const ids = (users: ListedUser[]) => users.map(u => u.id)

// Five live users whose email, lastName and creation orders all differ, and one deleted.
const tag = newTag('lst')
const fixtures: ListedUser[] = []
for (const [word, last, extra] of [
  ['echo', 'charlie', {}],
  ['alpha', 'echo', { status: 'suspended' }],
  ['delta', 'alpha', { roles: ['admin', 'user'] }],
  ['bravo', 'delta', {}],
  ['charlie', 'bravo', {}]
] as const) {
  fixtures.push(await create({ email: `${tag}-${word}@example.test`, lastName: `${tag}${last}`, ...extra }))
}
await db.updateTable('users').set({ emailVerified: true }).where('id', '=', fixtures[3].id).execute()
const deleted = await create({ email: `${tag}-foxtrot@example.test`, lastName: `${tag}foxtrot` })
t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${deleted.id}` })).statusCode, 204)

t.test('page mode: exact totals, pages in order, nextCursor only while there is a next page', async t => {
  const expected = ids([...fixtures].sort(byKey('createdAt', false)))
  const seen: string[] = []
  for (const page of [1, 2, 3]) {
    const body = await listOk(t, { q: tag, limit: 2, page })
    t.equal(body.success, true)
    t.match(body.pagination, { page, limit: 2, total: 5, totalPages: 3, hasNext: page < 3 })
    if (page < 3) t.type(body.pagination.nextCursor, 'string', 'nextCursor while there is more')
    else t.equal(body.pagination.nextCursor, null, 'nextCursor null on the last page')
    seen.push(...ids(body.data))
  }
  t.same(seen, expected, 'pages in createdAt order, each row once')

  const beyond = await listOk(t, { q: tag, limit: 2, page: 4 })
  t.same(beyond.data, [])
  t.same(beyond.pagination, { page: 4, limit: 2, total: 5, totalPages: 3, hasNext: false, nextCursor: null })

  const defaults = await listOk(t, { q: tag })
  t.same(defaults.pagination, { page: 1, limit: 20, total: 5, totalPages: 1, hasNext: false, nextCursor: null }, 'defaults: page 1, limit 20')
  t.same(ids(defaults.data), expected)

  const empty = await listOk(t, { q: newTag('none') })
  t.same(empty.pagination, { page: 1, limit: 20, total: 0, totalPages: 0, hasNext: false, nextCursor: null })
})

t.test('limit and page bounds', async t => {
  for (const [query, field] of [
    [{ limit: 0 }, 'limit'], [{ limit: 101 }, 'limit'], [{ limit: -1 }, 'limit'], [{ limit: 'ten' }, 'limit'], [{ limit: 1.5 }, 'limit'],
    [{ page: 0 }, 'page'], [{ page: -3 }, 'page'], [{ page: 'first' }, 'page']
  ] as const) {
    const error = assertError(t, await list({ q: tag, ...query }), 400, 'VALIDATION_ERROR', JSON.stringify(query))
    t.ok(error.details?.some(d => d.field === field), `a detail names ${field}`)
  }
  t.equal((await listOk(t, { q: tag, limit: 1 })).data.length, 1, 'limit 1')
  t.equal((await listOk(t, { q: tag, limit: 100 })).pagination.limit, 100, 'limit 100')
})

t.test('every sort', async t => {
  for (const sort of ['createdAt', '-createdAt', 'email', '-email', 'lastName', '-lastName'] as const) {
    const key = sort.replace('-', '') as 'createdAt' | 'email' | 'lastName'
    const expected = ids([...fixtures].sort(byKey(key, sort.startsWith('-'))))
    t.same(ids((await listOk(t, { q: tag, sort })).data), expected, `sort=${sort}`)
    // Across pages as well.
    const first = await listOk(t, { q: tag, sort, limit: 3 })
    const second = await listOk(t, { q: tag, sort, limit: 3, page: 2 })
    t.same([...ids(first.data), ...ids(second.data)], expected, `sort=${sort} over two pages`)
  }
  for (const sort of ['id', 'password', 'createdAt,email', '']) {
    assertError(t, await list({ sort }), 400, 'VALIDATION_ERROR', `sort=${sort}`)
  }
})

t.test('q searches email and names, case-insensitively, with % and _ taken literally', async t => {
  t.same(ids((await listOk(t, { q: `${tag}-ALPHA@` })).data), [fixtures[1].id], 'by email, other case')
  t.same(ids((await listOk(t, { q: `${tag}charlie` })).data), [fixtures[0].id], 'by last name')

  const tag2 = newTag('esc')
  const [pct, pctX, und, undX] = [
    await create({ email: `${tag2}-1@example.test`, firstName: `${tag2}pct%done`, lastName: 'Escape' }),
    await create({ email: `${tag2}-2@example.test`, firstName: `${tag2}pctXdone`, lastName: 'Escape' }),
    await create({ email: `${tag2}-3@example.test`, firstName: `${tag2}und_score`, lastName: 'Escape' }),
    await create({ email: `${tag2}-4@example.test`, firstName: `${tag2}undXscore`, lastName: 'Escape' })
  ]
  t.same(ids((await listOk(t, { q: `${tag2}pct%d` })).data), [pct.id], '% is literal')
  t.same(ids((await listOk(t, { q: `${tag2}pctXd` })).data), [pctX.id])
  t.same(ids((await listOk(t, { q: `${tag2}und_s` })).data), [und.id], '_ is literal')
  t.same(ids((await listOk(t, { q: `${tag2}undXs` })).data), [undX.id])
  t.same((await listOk(t, { q: `${tag2}%` })).data, [], 'a trailing % matches nothing')
  t.same((await listOk(t, { q: `${tag2}\\` })).data, [], 'a backslash is literal too')
  t.equal((await listOk(t, { q: tag2.toUpperCase() })).pagination.total, 4, 'case-insensitive')
  assertError(t, await list({ q: '' }), 400, 'VALIDATION_ERROR', 'empty q')
  assertError(t, await list({ q: 'x'.repeat(101) }), 400, 'VALIDATION_ERROR', 'q too long')
})

t.test('role, status and emailVerified filters', async t => {
  t.same(ids((await listOk(t, { q: tag, role: 'admin' })).data), [fixtures[2].id], 'role=admin')
  t.same(ids((await listOk(t, { q: tag, role: 'user' })).data), ids(fixtures), 'role=user')
  t.same((await listOk(t, { q: tag, role: `no-such-role-${tag}` })).data, [], 'an unknown role matches nobody')
  t.same(ids((await listOk(t, { q: tag, status: 'suspended' })).data), [fixtures[1].id], 'status=suspended')
  t.same(ids((await listOk(t, { q: tag, status: 'active' })).data), ids(fixtures.filter((_, i) => i !== 1)), 'status=active')
  t.same((await listOk(t, { q: tag, status: 'pending' })).data, [], 'status=pending')
  t.same(ids((await listOk(t, { q: tag, emailVerified: true })).data), [fixtures[3].id], 'emailVerified=true')
  t.same(ids((await listOk(t, { q: tag, emailVerified: false })).data), ids(fixtures.filter((_, i) => i !== 3)), 'emailVerified=false')
  t.same(ids((await listOk(t, { q: tag, status: 'active', role: 'user', emailVerified: false, limit: 1 })).data), [fixtures[0].id], 'filters combine')
  t.equal((await listOk(t, { q: tag, status: 'active', role: 'user', emailVerified: false, limit: 1 })).pagination.total, 3)
  for (const query of [{ status: 'deleted' }, { emailVerified: 'maybe' }, { includeDeleted: 'sometimes' }, { role: '' }]) {
    assertError(t, await list({ q: tag, ...query }), 400, 'VALIDATION_ERROR', JSON.stringify(query))
  }
})

t.test('createdAfter and createdBefore are exclusive', async t => {
  const sorted = [...fixtures].sort(byKey('createdAt', false))
  const after = sorted[1].createdAt
  const before = sorted[3].createdAt
  const expectAfter = ids(sorted.filter(u => u.createdAt > after))
  const expectBefore = ids(sorted.filter(u => u.createdAt < before))
  t.same(ids((await listOk(t, { q: tag, createdAfter: after })).data), expectAfter, 'createdAfter')
  t.notOk(expectAfter.includes(sorted[1].id), 'the boundary row is excluded')
  t.same(ids((await listOk(t, { q: tag, createdBefore: before })).data), expectBefore, 'createdBefore')
  t.same(ids((await listOk(t, { q: tag, createdAfter: after, createdBefore: before })).data),
    ids(sorted.filter(u => u.createdAt > after && u.createdAt < before)), 'both')
  t.same((await listOk(t, { q: tag, createdAfter: before, createdBefore: after })).data, [], 'an empty window')
  for (const query of [{ createdAfter: 'yesterday' }, { createdBefore: '2026-13-01T00:00:00Z' }]) {
    assertError(t, await list({ q: tag, ...query }), 400, 'VALIDATION_ERROR', JSON.stringify(query))
  }
  // RFC 3339 allows a leap second, which a Date cannot hold; it was a 500 (found by test/fuzz.test.ts).
  t.same((await listOk(t, { q: tag, createdBefore: '2016-12-31T23:59:60Z' })).data, [], 'a leap second is the second after')
  t.equal((await listOk(t, { q: tag, createdAfter: '2016-12-31T22:59:60.5-01:00' })).data.length, fixtures.length, 'with an offset and a fraction too')
})

t.test('includeDeleted shows soft-deleted users with their deletedAt', async t => {
  t.notOk(ids((await listOk(t, { q: tag })).data).includes(deleted.id), 'hidden by default')
  t.notOk(ids((await listOk(t, { q: tag, includeDeleted: false })).data).includes(deleted.id), 'hidden with includeDeleted=false')
  const body = await listOk(t, { q: tag, includeDeleted: true })
  t.equal(body.pagination.total, 6)
  const row = body.data.find(u => u.id === deleted.id)
  t.match(row?.deletedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  t.ok(body.data.filter(u => u.id !== deleted.id).every(u => u.deletedAt === null), 'live users have deletedAt null')
})

t.test('fields returns exactly the fields asked for', async t => {
  const cases: Array<[string, string[]]> = [
    ['id,email', ['email', 'id']],
    ['email, lastName ,id', ['email', 'id', 'lastName']],
    ['roles,profile,deletedAt,lastLoginAt', ['deletedAt', 'lastLoginAt', 'profile', 'roles']],
    ['id,id', ['id']]
  ]
  for (const [fields, keys] of cases) {
    const body = await listOk(t, { q: tag, fields })
    t.equal(body.data.length, 5)
    t.ok(body.data.every(u => JSON.stringify(Object.keys(u).sort()) === JSON.stringify(keys)), `fields=${fields}: exactly ${keys}`)
  }
  const roles = await listOk(t, { q: tag, fields: 'id,roles', role: 'admin' })
  t.same(roles.data, [{ id: fixtures[2].id, roles: ['admin', 'user'] }], 'values are the real ones')

  for (const fields of ['id,password', 'passwordHash', 'nope', ',', '']) {
    const error = assertError(t, await list({ q: tag, fields }), 400, 'VALIDATION_ERROR', `fields=${fields}`)
    t.ok(error.details?.some(d => d.field === 'fields'), 'a detail names fields')
  }
})

t.test('keyset paging sees every row exactly once while rows are inserted between pages', async t => {
  const tag3 = newTag('cur')
  let counter = 0
  const insert = () => create({ email: `${tag3}-${randomUUID().slice(0, 8)}@example.test`, lastName: `${tag3}${randomUUID().slice(0, 8)}`, firstName: `n${counter++}` })
  for (let i = 0; i < 7; i++) await insert()

  for (const sort of ['createdAt', '-createdAt', 'email', '-email', 'lastName', '-lastName']) {
    const before = await listOk(t, { q: tag3, sort, limit: 100 })
    const originals = ids(before.data)
    t.ok(originals.length >= 7)

    const seen: string[] = []
    let body = await listOk(t, { q: tag3, sort, limit: 3 })
    seen.push(...ids(body.data))
    let pages = 1
    while (body.pagination.nextCursor) {
      await insert()
      body = await listOk(t, { q: tag3, sort, limit: 3, cursor: body.pagination.nextCursor })
      t.same({ page: body.pagination.page, total: body.pagination.total, totalPages: body.pagination.totalPages, limit: body.pagination.limit },
        { page: null, total: null, totalPages: null, limit: 3 }, `${sort}: keyset page ${pages + 1} has no page or totals`)
      t.ok(body.data.length <= 3)
      seen.push(...ids(body.data))
      if (++pages > 20) break
    }
    t.equal(body.pagination.hasNext, false, `${sort}: the last page has no next`)
    t.equal(body.pagination.nextCursor, null, `${sort}: nextCursor null on the last page`)
    t.equal(new Set(seen).size, seen.length, `${sort}: no row seen twice`)
    for (const id of originals) t.equal(seen.filter(s => s === id).length, 1, `${sort}: row ${id} seen once`)
    // The order is the sort's order.
    const all = new Map((await listOk(t, { q: tag3, sort, limit: 100 })).data.map(u => [u.id, u]))
    const key = sort.replace('-', '') as 'createdAt' | 'email' | 'lastName'
    const rows = seen.map(id => all.get(id)!)
    t.same(ids(rows), ids([...rows].sort(byKey(key, sort.startsWith('-')))), `${sort}: in order`)
  }
})

t.test('a cursor is refused when malformed or used with another sort or filter', async t => {
  const page = await listOk(t, { q: tag, limit: 2 })
  const cursor = page.pagination.nextCursor!
  t.type(cursor, 'string')
  const [fingerprint, value, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  t.equal(typeof fingerprint, 'string')
  const encode = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

  const malformed = [
    'garbage!!', 'e30', encode({}), encode([fingerprint, value]), encode([fingerprint, value, 'not-a-uuid']),
    encode([fingerprint, 42, id]), encode([fingerprint, 'not-a-date', id]), encode([fingerprint, '2026-13-45T99:00:00Z', id]),
    'x'.repeat(1025)
  ]
  for (const bad of malformed) {
    const error = assertError(t, await list({ q: tag, limit: 2, cursor: bad }), 400, 'VALIDATION_ERROR', `cursor ${bad.slice(0, 40)}`)
    t.ok(error.details?.some(d => d.field === 'cursor'), 'a detail names cursor')
  }

  const mismatched = [
    { q: tag, sort: '-createdAt' }, { q: tag, sort: 'email' }, { q: `${tag}-a` }, {},
    { q: tag, status: 'active' }, { q: tag, role: 'user' }, { q: tag, emailVerified: false }, { q: tag, includeDeleted: true },
    { q: tag, createdAfter: '2000-01-01T00:00:00.000Z' }, { q: tag, createdBefore: '2100-01-01T00:00:00.000Z' },
    { q: tag, sort: 'createdAt', fields: 'id', status: 'suspended' }
  ]
  for (const query of mismatched) {
    const error = assertError(t, await list({ limit: 2, ...query, cursor }), 400, 'VALIDATION_ERROR', `cursor with ${JSON.stringify(query)}`)
    t.ok(error.details?.some(d => d.field === 'cursor'), 'a detail names cursor')
  }

  // The same list with another limit or another set of fields is the same list.
  const next = await listOk(t, { q: tag, sort: 'createdAt', limit: 10, fields: 'id', cursor })
  t.same(next.data.map(u => u.id), ids([...fixtures].sort(byKey('createdAt', false))).slice(2))
})

import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { parseSearch } from '../src/lib/search-query.js'
import { as, assertError, build, createUser, PASSWORD } from './helper.js'

// Advanced search (CONTRACT.md): field terms, phrases, AND, fuzzy words and relevance on GET /api/v1/users.

t.test('parseSearch: term kinds, quotes, swaps and limits', async t => {
  t.same(parseSearch('john  "Mary Ann" email:x@y NAME:smith phone:"+1 555"'), [
    { field: 'any', text: 'john' },
    { field: 'any', text: 'Mary Ann' },
    { field: 'email', text: 'x@y' },
    { field: 'name', text: 'smith' },
    { field: 'phone', text: '+1 555' }
  ])
  t.same(parseSearch('name:"Mary Ann" jones'), [{ field: 'name', text: 'Mary Ann' }, { field: 'any', text: 'jones' }], 'a quoted field value')
  t.same(parseSearch('"open phrase'), [{ field: 'any', text: 'open phrase' }], 'an unclosed quote runs to the end')
  t.same(parseSearch('foo:bar'), [{ field: 'any', text: 'foo:bar' }], 'an unknown prefix is part of a plain word')
  t.same(parseSearch('jhon "no swaps" name:x', { fuzzy: true }), [
    { field: 'any', text: 'jhon', swaps: ['hjon', 'john', 'jhno'] },
    { field: 'any', text: 'no swaps' },
    { field: 'name', text: 'x' }
  ], 'fuzzy applies to plain words only')
  t.same(parseSearch('aab ab', { fuzzy: true }), [{ field: 'any', text: 'aab', swaps: ['aba'] }, { field: 'any', text: 'ab', swaps: [] }], 'no swap equal to the word; none for short words')
  for (const q of ['', '   ', '""', 'email:', 'name: x', 'phone:""', 'a b c d e f g h i']) {
    t.throws(() => parseSearch(q), { code: 'VALIDATION_ERROR' }, JSON.stringify(q))
  }
  t.equal(parseSearch('a b c d e f g h').length, 8, 'eight terms are fine')
})

// Keyless even when the suite runs with PII_ENCRYPTION_KEYS: phone: matches substrings only while
// phones are stored in clear (sealed, it matches the whole number: test/pii-encryption.test.ts).
const app = await build(t, {}, { PII_ENCRYPTION_KEYS: '' })
const admin = await createUser(app, { roles: ['admin'] })
const tag = `srch${randomUUID().replaceAll('-', '').slice(0, 10)}`

interface Listed { id: string, email: string, firstName: string, [key: string]: unknown }
interface ListBody { data: Listed[], pagination: { page: number | null, total: number | null, hasNext: boolean, nextCursor: string | null } }

async function create (firstName: string, lastName: string, email: string, extra: Record<string, unknown> = {}): Promise<Listed> {
  const res = await as(app, admin, { method: 'POST', url: '/api/v1/users', payload: { password: PASSWORD, firstName, lastName, email: `${email}-${tag}@example.test`, ...extra } })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json().data
}

// Created in this order, so that the default sort (createdAt) differs from relevance.
const johnny = await create('Johnny', 'Smithers', 'jsmithers', { profile: { phone: '+1 555 0100' } })
const john = await create('John', 'Smith', 'john.smith', { profile: { phone: '+44 20 7946 0001' } })
const mary = await create('Mary Ann', 'Jones', 'maj', { status: 'suspended' })
const jon = await create('Jon', 'Anderson', 'anderson')
const alice = await create('Alice', 'Johnson', 'alice', { roles: ['admin'] })

type Query = Record<string, string | number | boolean>
const list = (query: Query) => as(app, admin, { method: 'GET', url: `/api/v1/users?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))}` })

/** Searches within this file's users only: every q gets the term email:<tag> (which also exercises AND). */
async function search (t: Test, q: string, query: Query = {}): Promise<ListBody> {
  const res = await list({ q: `${q} email:${tag}`, ...query })
  t.equal(res.statusCode, 200, `q=${q} ${JSON.stringify(query)}`)
  if (res.statusCode !== 200) t.comment(res.body)
  return res.json()
}
const ids = (body: ListBody) => body.data.map(u => u.id)
const idsOf = (...users: Listed[]) => users.map(u => u.id)

t.test('each term kind', async t => {
  t.same(ids(await search(t, 'smith')), idsOf(johnny, john), 'a plain word: email or names')
  t.same(ids(await search(t, 'email:john.smith')), idsOf(john), 'email:')
  t.same(ids(await search(t, 'name:smith')), idsOf(johnny, john), 'name: a last name')
  t.same(ids(await search(t, 'name:john')), idsOf(johnny, john, alice), 'name: a first or a last name')
  t.same(ids(await search(t, 'name:maj')), [], 'name: does not search the email')
  t.same(ids(await search(t, 'NAME:"mary ann"')), idsOf(mary), 'name: with a quoted value, any case')
  t.same(ids(await search(t, 'phone:7946')), idsOf(john), 'phone:')
  t.same(ids(await search(t, 'phone:"1 555"')), idsOf(johnny), 'phone: quoted')
  t.same(ids(await search(t, 'SMITHERS')), idsOf(johnny), 'case-insensitive')
})

t.test('quoted phrases match as one substring, across first and last name', async t => {
  t.same(ids(await search(t, '"john smith"')), idsOf(john), 'first and last name as a phrase')
  t.same(ids(await search(t, '"ann jones"')), idsOf(mary))
  t.same(ids(await search(t, '"smith john"')), [], 'the words in another order are another phrase')
})

t.test('every term must match (AND)', async t => {
  t.same(ids(await search(t, 'john smith')), idsOf(johnny, john), 'both words, anywhere')
  t.same(ids(await search(t, 'mary jones')), idsOf(mary))
  t.same(ids(await search(t, 'john anderson')), [], 'one of the words matching is not enough')
  t.same(ids(await search(t, 'name:smith phone:555')), idsOf(johnny), 'field terms together')
})

t.test('fuzzy=true tolerates typos in plain words', async t => {
  t.same(ids(await search(t, 'jhon')), [], 'without fuzzy, a typo finds nothing')
  const found = ids(await search(t, 'jhon', { fuzzy: true }))
  for (const user of [john, johnny, alice]) t.ok(found.includes(user.id), `jhon finds ${user.firstName} ${user.email}`)
  t.notOk(found.includes(mary.id), 'but not an unrelated name')
  t.same(ids(await search(t, 'andersen', { fuzzy: true })), idsOf(jon), 'a wrong letter in a longer word (trigram similarity)')
  t.same(ids(await search(t, 'andersen')), [], 'which exact search does not find')
  t.same(ids(await search(t, 'name:jhon', { fuzzy: true })), [], 'field terms stay exact')
  t.same(ids(await search(t, '"jhon smith"', { fuzzy: true })), [], 'phrases stay exact')
  // The swaps go to PostgreSQL as one regular expression: a word that would be a broken or a
  // catastrophic one is searched as text (unescaped, `smi(th` is an error, a 500).
  for (const word of ['smi(th', 'a[b', '*john', 'x\\', 'jo{2}n', 'a|b']) {
    await search(t, word, { fuzzy: true })
  }
  t.ok(ids(await search(t, 'msithers-', { fuzzy: true })).includes(johnny.id), 'a swap still matches as a substring')
  const ranked = await search(t, 'jhon', { fuzzy: true, sort: 'relevance' })
  t.equal(ranked.data[0].id, john.id, 'the closest match first: John')
})

t.test('sort=relevance: best first, in page and keyset modes', async t => {
  const byDate = await search(t, 'smith')
  t.same(ids(byDate), idsOf(johnny, john), 'default order is createdAt')
  const ranked = await search(t, 'smith', { sort: 'relevance' })
  t.same(ids(ranked), idsOf(john, johnny), 'the whole word "Smith" before "Smithers"')
  t.equal(ranked.pagination.total, 2, 'page mode: the exact total')

  const all = ids(await search(t, 'jhon', { fuzzy: true, sort: 'relevance' }))
  t.ok(all.length >= 3)
  const paged: string[] = []
  for (let page = 1; page <= all.length; page++) paged.push(...ids(await search(t, 'jhon', { fuzzy: true, sort: 'relevance', limit: 1, page })))
  t.same(paged, all, 'page by page, the same order')
  const keyset: string[] = []
  let cursor: string | null = null
  do {
    const body: ListBody = await search(t, 'jhon', { fuzzy: true, sort: 'relevance', limit: 1, ...(cursor ? { cursor } : {}) })
    keyset.push(...ids(body))
    if (cursor) t.equal(body.pagination.total, null, 'keyset mode: no total')
    cursor = body.pagination.nextCursor
  } while (cursor && keyset.length <= all.length)
  t.same(keyset, all, 'cursor by cursor (the cursor carries the score), every match exactly once, in the same order')
})

t.test('search combines with filters, fields, includeDeleted and keyset paging', async t => {
  t.same(ids(await search(t, 'jones', { status: 'suspended' })), idsOf(mary), 'status')
  t.same(ids(await search(t, 'jones', { status: 'active' })), [])
  t.same(ids(await search(t, 'john', { role: 'admin' })), idsOf(alice), 'role')
  const narrow = await search(t, 'john', { fields: 'id,email' })
  t.same(narrow.data.map(u => Object.keys(u).sort()), [['email', 'id'], ['email', 'id'], ['email', 'id']], 'fields')
  const ranked = await search(t, 'smith', { sort: 'relevance', fields: 'firstName' })
  t.same(ranked.data, [{ firstName: 'John' }, { firstName: 'Johnny' }], 'fields with relevance: no score leaks out')

  const keyset: string[] = []
  let body = await search(t, 'john', { limit: 2, sort: '-createdAt' })
  keyset.push(...ids(body))
  body = await search(t, 'john', { limit: 2, sort: '-createdAt', cursor: body.pagination.nextCursor! })
  keyset.push(...ids(body))
  t.same(keyset, idsOf(alice, john, johnny), 'keyset mode with q and a column sort')
  t.equal(body.pagination.nextCursor, null)

  const del = await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${jon.id}` })
  t.equal(del.statusCode, 204)
  t.same(ids(await search(t, 'anderson')), [], 'a deleted user is not found')
  t.same(ids(await search(t, 'anderson', { includeDeleted: true })), idsOf(jon), 'unless includeDeleted')
})

t.test('bad combinations are 400', async t => {
  assertError(t, await list({ sort: 'relevance' }), 400, 'VALIDATION_ERROR', 'relevance without q')
  assertError(t, await list({ fuzzy: true }), 400, 'VALIDATION_ERROR', 'fuzzy without q')
  assertError(t, await list({ q: 'email:' }), 400, 'VALIDATION_ERROR', 'a field term without a value')
  assertError(t, await list({ q: '""' }), 400, 'VALIDATION_ERROR', 'no term at all')
  assertError(t, await list({ q: 'a b c d e f g h i' }), 400, 'VALIDATION_ERROR', 'too many terms')
  assertError(t, await list({ q: 'x', fuzzy: 'maybe' }), 400, 'VALIDATION_ERROR', 'fuzzy not a boolean')

  const first = await search(t, 'john', { sort: 'relevance', limit: 1 })
  const cursor = first.pagination.nextCursor!
  assertError(t, await list({ q: `john email:${tag}`, sort: 'createdAt', cursor }), 400, 'VALIDATION_ERROR', 'a relevance cursor with another sort')
  assertError(t, await list({ q: `john email:${tag}`, sort: 'relevance', fuzzy: true, cursor }), 400, 'VALIDATION_ERROR', 'a cursor made without fuzzy')
  const [fingerprint, , id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as string[]
  const forged = Buffer.from(JSON.stringify([fingerprint, 'a lot', id])).toString('base64url')
  assertError(t, await list({ q: `john email:${tag}`, sort: 'relevance', limit: 1, cursor: forged }), 400, 'VALIDATION_ERROR', 'a relevance cursor without a score')
})

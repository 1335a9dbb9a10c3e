import t from 'tap'
import { as, assertError, build, createUser } from './helper.js'

const app = await build(t)
const admin = await createUser(app, { roles: ['admin'] })

const get = (id: string, headers: Record<string, string> = {}) => as(app, admin, { method: 'GET', url: `/api/v1/users/${id}`, headers })

t.test('If-None-Match with the current ETag is 304, with the ETag and no body', async t => {
  const user = await createUser(app)
  const first = await get(user.id)
  const etag = first.headers.etag as string
  t.match(etag, /^"[^"]+"$/)

  for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const res = await get(user.id, { 'if-none-match': header })
    t.equal(res.statusCode, 304, `If-None-Match: ${header}`)
    t.equal(res.body, '', 'no body')
    t.equal(res.headers.etag, etag, 'the ETag is repeated')
  }
  for (const header of ['"stale"', etag.slice(0, -2) + '"']) {
    const res = await get(user.id, { 'if-none-match': header })
    t.equal(res.statusCode, 200, `If-None-Match: ${header}`)
    t.equal(res.json().data.id, user.id)
  }
  t.equal((await get(user.id)).headers.etag, etag, 'the ETag is stable while nothing changes')
})

t.test('any change gives a new ETag; the one a write returns is the one a GET gives', async t => {
  const user = await createUser(app)
  const etag = (await get(user.id)).headers.etag as string
  const patched = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { firstName: 'Changed' } })
  t.equal(patched.statusCode, 200)
  t.not(patched.headers.etag, etag, 'a new ETag')
  t.equal((await get(user.id)).headers.etag, patched.headers.etag)
  t.equal((await get(user.id, { 'if-none-match': etag })).statusCode, 200, 'the old ETag no longer matches')

  const put = await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}`, payload: { email: user.email, firstName: 'Put', lastName: 'Again', profile: { bio: 'x' } } })
  t.equal(put.statusCode, 200)
  t.equal((await get(user.id)).headers.etag, put.headers.etag)
})

t.test('If-Match with a stale ETag is 412 on PUT, PATCH and DELETE, and changes nothing', async t => {
  const user = await createUser(app)
  const stale = (await get(user.id)).headers.etag as string
  const changed = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, payload: { lastName: 'Moved' } })
  t.equal(changed.statusCode, 200)
  const current = changed.json().data

  const attempts = [
    { method: 'PUT' as const, payload: { email: user.email, firstName: 'Lost', lastName: 'Update', profile: null } },
    { method: 'PATCH' as const, payload: { firstName: 'Lost' } },
    { method: 'DELETE' as const }
  ]
  for (const attempt of attempts) {
    const res = await as(app, admin, { ...attempt, url: `/api/v1/users/${user.id}`, headers: { 'if-match': stale } })
    assertError(t, res, 412, 'PRECONDITION_FAILED', attempt.method)
  }
  const after = await get(user.id)
  t.equal(after.statusCode, 200, 'not deleted')
  t.same(after.json().data, current, 'unchanged')
})

t.test('If-Match with the current ETag (or *) lets the write through', async t => {
  const user = await createUser(app)
  let etag = (await get(user.id)).headers.etag as string
  const put = await as(app, admin, { method: 'PUT', url: `/api/v1/users/${user.id}`, headers: { 'if-match': etag }, payload: { email: user.email, firstName: 'A', lastName: 'B', profile: null } })
  t.equal(put.statusCode, 200, 'PUT')
  etag = put.headers.etag as string
  const patch = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'if-match': etag }, payload: { firstName: 'C' } })
  t.equal(patch.statusCode, 200, 'PATCH with the ETag the PUT returned')
  const star = await as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'if-match': '*' }, payload: { firstName: 'D' } })
  t.equal(star.statusCode, 200, 'If-Match: *')
  const del = await as(app, admin, { method: 'DELETE', url: `/api/v1/users/${user.id}`, headers: { 'if-match': star.headers.etag as string } })
  t.equal(del.statusCode, 204, 'DELETE')
})

t.test('two writers with the same ETag: the second gets 412 (no lost update)', async t => {
  const user = await createUser(app)
  const etag = (await get(user.id)).headers.etag as string
  const [a, b] = await Promise.all([
    as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'if-match': etag }, payload: { firstName: 'Writer-A' } }),
    as(app, admin, { method: 'PATCH', url: `/api/v1/users/${user.id}`, headers: { 'if-match': etag }, payload: { firstName: 'Writer-B' } })
  ])
  t.same([a.statusCode, b.statusCode].sort(), [200, 412])
  const winner = a.statusCode === 200 ? a : b
  t.equal((await get(user.id)).json().data.firstName, winner.json().data.firstName)
})

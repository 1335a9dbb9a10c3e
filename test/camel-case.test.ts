import { CamelCasePlugin, type PluginTransformResultArgs, type QueryId } from 'kysely'
import t from 'tap'
import { RowsCamelCasePlugin } from '../src/db/camel-case.js'

// The faster plugin must answer exactly as Kysely's own, whatever the column holds.
const rows = [
  {
    id: 'a',
    first_name: 'Ada',
    last_login_at: new Date('2026-01-02T03:04:05.678Z'),
    email_verified: true,
    roles: ['admin', 'user'],
    changes: { first_name: { from: 'A', to: 'B' } },
    events: [{ event_type: 'x', nested_list: [{ deep_key: 1 }] }, 'plain'],
    avatar: Buffer.from('png'),
    count: 3,
    note: null,
    empty_list: []
  },
  {
    id: 'b',
    first_name: 'Bob',
    last_login_at: null,
    email_verified: false,
    roles: [],
    changes: null,
    events: [],
    avatar: null,
    count: 0,
    note: 'n',
    empty_list: [null]
  }
]
const args = (): PluginTransformResultArgs => ({ queryId: { queryId: 'q' } as QueryId, result: { rows: structuredClone(rows).map((row, i) => ({ ...row, avatar: rows[i].avatar })) } })

t.test('maps result rows as CamelCasePlugin does', async t => {
  const expected = await new CamelCasePlugin().transformResult(args())
  const actual = await new RowsCamelCasePlugin().transformResult(args())
  t.same(actual, expected)
  t.same(Object.keys(actual.rows[0]), ['id', 'firstName', 'lastLoginAt', 'emailVerified', 'roles', 'changes', 'events', 'avatar', 'count', 'note', 'emptyList'])
  t.same(actual.rows[0].events, [{ eventType: 'x', nestedList: [{ deepKey: 1 }] }, 'plain'], 'objects inside arrays are mapped too')
  t.ok(actual.rows[0].lastLoginAt instanceof Date, 'dates stay dates')
})

t.test('leaves results without rows alone', async t => {
  const result = { numAffectedRows: 1n, rows: [] }
  t.equal(await new RowsCamelCasePlugin().transformResult({ queryId: { queryId: 'q' } as QueryId, result }), result)
})

t.test('rows given as arrays of values (pg rowMode array) map as CamelCasePlugin maps objects', async t => {
  const expected = await new CamelCasePlugin().transformResult(args())
  const columns = Object.keys(rows[0])
  const arrays = args().result.rows.map(row => columns.map(column => (row as Record<string, unknown>)[column]))
  const actual = new RowsCamelCasePlugin().rowsFromArrays(columns, arrays)
  t.same(actual, expected.rows)
  t.same(Object.keys(actual[0]), Object.keys(expected.rows[0]), 'in column order')
  t.same(new RowsCamelCasePlugin().rowsFromArrays(columns, []), [])
})

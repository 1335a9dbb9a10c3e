import { createHmac, randomUUID } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { build, createUser, PASSWORD, type TestUser } from './helper.js'

// A fixed seed and a bounded count: the same few thousand requests on every run, well under two minutes.
// FUZZ_SEED and FUZZ_RUNS explore further by hand; CI keeps the defaults.
const SEED = Number(process.env.FUZZ_SEED ?? 20260113)
const RUNS_PER_OPERATION = Number(process.env.FUZZ_RUNS ?? 75)
const RUNS_UNROUTED = 2 * RUNS_PER_OPERATION

// What no answer may contain: a stack frame, a file of ours or a dependency's, SQL or a driver's message.
const LEAKS = [/\bat .*\(.*:\d+:\d+\)/, /node_modules|\/src\/|\.ts:\d+/, /\b(SELECT|INSERT INTO|DELETE FROM) /, /\bUPDATE \w+ SET\b/, /syntax error at|relation "|violates .* constraint|duplicate key value/]

type Json = Record<string, unknown>
interface Schema { type?: string, properties?: Record<string, Schema>, required?: string[], items?: Schema, anyOf?: Schema[], enum?: unknown[], $ref?: string, format?: string, pattern?: string, minLength?: number, maxLength?: number, minimum?: number, maximum?: number, maxItems?: number, uniqueItems?: boolean }
interface Parameter { in: string, name: string, schema: Schema }
interface Operation { method: string, path: string, parameters: Parameter[], body?: Schema, streams: boolean }

type ActorName = 'admin' | 'user'
interface Actor extends TestUser { sessionId: string }

/** A value the generator cannot know in advance (a live id, token or email): looked up when the request is sent. */
class Live {
  constructor (readonly kind: 'id' | 'refreshToken' | 'email' | 'emailToken', readonly n: number) {}
  toJSON () { return live(this) }
  [fc.toStringMethod] () { return `Live(${this.kind}, ${this.n})` }
}
let live: (value: Live) => string = () => ''

const hostileString = fc.oneof(
  fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\uD800', 'x\uDFFF', '\uFEFF', '\r\n', '%00', '%zz', '\\', '../../etc/passwd',
    "' OR 1=1 --", '<script>alert(1)</script>', '{{7*7}}', '__proto__', 'constructor', 'null', 'NaN', '-1', '1e999'),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('x'.repeat(5000), 'é'.repeat(3000), '😀'.repeat(1500))
)
const protoObject = () => JSON.parse('{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}}}')
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(protoObject()),
  fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 2 }),
  fc.integer({ min: 20, max: 200 }).map(depth => Array.from({ length: depth }).reduce<unknown>(inner => ({ a: [inner] }), 1))
)

/** Valid values for a schema of the document (the keywords it uses), with a few known-good values where a name asks for one. */
function arbitraryOf (schema: Schema, resolve: (ref: string) => Schema, name = ''): fc.Arbitrary<unknown> {
  const hint = HINTS[name]
  if (hint) return hint
  if (schema.$ref) return arbitraryOf(resolve(schema.$ref), resolve)
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(s => arbitraryOf(s, resolve)))
  if (schema.enum) return fc.constantFrom(...schema.enum)
  switch (schema.type) {
    case 'object': {
      const properties = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, s]) => [key, arbitraryOf(s, resolve, key)]))
      return fc.record(properties, { requiredKeys: schema.required ?? [] })
    }
    case 'array': {
      const options = { maxLength: Math.min(schema.maxItems ?? 5, 5) }
      const items = arbitraryOf(schema.items ?? {}, resolve)
      return schema.uniqueItems ? fc.uniqueArray(items, { ...options, selector: v => JSON.stringify(v) }) : fc.array(items, options)
    }
    case 'integer': return fc.integer({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9 })
    case 'number': return fc.double({ min: schema.minimum, max: schema.maximum, noNaN: true })
    case 'boolean': return fc.boolean()
    case 'null': return fc.constant(null)
    case 'string': {
      if (schema.format === 'uuid') return fc.uuid()
      if (schema.format === 'email') return fc.emailAddress()
      if (schema.format === 'uri') return fc.webUrl()
      if (schema.format === 'date-time') return fc.oneof(fc.date({ min: new Date(0), max: new Date('2100-01-01'), noInvalidDate: true }).map(d => d.toISOString()), DATE_TIME_EDGES)
      const { minLength = 0, maxLength } = schema
      const pattern = schema.pattern === undefined ? undefined : new RegExp(schema.pattern)
      // The schema's lengths count code points, as Ajv does.
      const fits = (v: string) => [...v].length >= minLength && [...v].length <= (maxLength ?? Infinity)
      const length = { minLength, maxLength: Math.min(maxLength ?? 40, 40) }
      const some = (pattern ? fc.stringMatching(pattern) : fc.oneof(fc.string(length), fc.string({ ...length, unit: 'grapheme' }))).filter(fits)
      // The longest value the schema allows, in one-, two- and four-byte characters.
      const longest = maxLength === undefined ? [] : ['x', 'é', '😀'].map(c => c.repeat(maxLength)).filter(v => !pattern || pattern.test(v))
      return longest.length ? fc.oneof({ weight: 4, arbitrary: some }, fc.constantFrom(...longest)) : some
    }
  }
  return fc.jsonValue()
}

// RFC 3339 date-times at the edges: a leap second, the first and last years, offsets, lower case, a space, nanoseconds.
const DATE_TIME_EDGES = fc.constantFrom('2016-12-31T23:59:60Z', '2016-12-31T22:59:60-01:00', '0000-01-01T00:00:00Z', '0001-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999+14:00', '2020-01-01t00:00:00z', '2020-01-01 00:00:00Z', '2020-01-01T00:00:00.123456789Z', '1969-12-31T23:59:59-23:59')

// Values the schema alone would almost never hit: a live account's email or refresh token, a password the policy takes.
const HINTS: Record<string, fc.Arbitrary<unknown>> = {
  email: fc.oneof(fc.nat().map(n => new Live('email', n)), fc.emailAddress()),
  password: fc.constantFrom(PASSWORD, 'Fuzzed-Secret-42', 'short'),
  currentPassword: fc.constantFrom(PASSWORD, 'Wrong-Secret-42'),
  newPassword: fc.constantFrom('Brand-New-Secret-7', 'short'),
  refreshToken: fc.oneof(fc.nat().map(n => new Live('refreshToken', n)), fc.string({ minLength: 1, maxLength: 80 })),
  token: fc.oneof(fc.nat().map(n => new Live('emailToken', n)), fc.string({ minLength: 1, maxLength: 80 })),
  roles: fc.uniqueArray(fc.constantFrom('user', 'admin', 'no-such-role'), { maxLength: 3 })
}

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.nat().map(n => new Live('id', n)) },
  { weight: 2, arbitrary: fc.uuid() },
  fc.constantFrom('00000000-0000-0000-0000-000000000000', 'abc', '0', '-1', '%', '%zz', '%00', '%ED%A0%80', '%C0%AF', '%2F', '%2e%2e', '..',
    '__proto__', 'constructor', '%20', 'ABCDEF00-0000-4000-8000-00000000000G', '{00000000-0000-0000-0000-000000000000}', '9'.repeat(300), 'a'.repeat(201)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).map(encodeURIComponent)
)

const MEDIA_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json',
  'application/json-patch+json', 'application/merge-patch+json', 'application/jsonx', 'application/json; charset=utf-16', 'image/png', '*/*', '']
const MALFORMED_JSON = ['{', '{"', '{"a":}', "{'a':1}", '[1,]', '{"a":1}}', 'nul', 'undefined', '\uFEFF{}', '', ' ', '{"a":NaN}', '{"a":1e999}',
  '{"email":"\\ud800"}', '{"email":"\\u0000"}', '{"a":"\\x00"}', '{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"isAdmin":true}}}',
  'null', 'true', '0', '"text"', '[]', '[{}]']

interface Body { value?: unknown, text?: string, oversized?: true, contentType?: string }

function bodyOf (schema: Schema | undefined, resolve: (ref: string) => Schema, method: string): fc.Arbitrary<Body | undefined> {
  const json = method === 'PATCH' ? fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/merge-patch+json') : fc.constantFrom('application/json', 'application/json; charset=utf-8')
  const hostile = fc.oneof(
    fc.record({ text: fc.constantFrom(...MALFORMED_JSON), contentType: json }),
    fc.record({ text: fc.integer({ min: 100, max: 20_000 }).map(n => '['.repeat(n) + ']'.repeat(n)), contentType: json }),
    fc.record({ text: fc.integer({ min: 100, max: 5_000 }).map(n => '{"a":'.repeat(n) + '1' + '}'.repeat(n)), contentType: json }),
    fc.record({ text: fc.string({ unit: 'binary', maxLength: 50 }), contentType: json }),
    fc.record({ value: fc.jsonValue({ maxDepth: 3 }), contentType: json }),
    fc.constant<Body>({ oversized: true, contentType: 'application/json' })
  )
  if (!schema) return fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, hostile)
  const valid = arbitraryOf(schema, resolve) as fc.Arbitrary<Json>
  const keys = fc.oneof(fc.constantFrom(...Object.keys(schema.properties ?? {})), fc.constantFrom('__proto__', 'constructor', 'isAdmin', 'passwordHash', 'id', 'deletedAt'))
  const mutated = fc.tuple(valid, keys, hostileValue).map(([value, key, bad]) => {
    const copy = { ...value }
    Object.defineProperty(copy, key, { value: bad, enumerable: true, writable: true, configurable: true })
    return copy
  })
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ value: valid, contentType: json }) },
    { weight: 3, arbitrary: fc.record({ value: mutated, contentType: json }) },
    { weight: 1, arbitrary: fc.record({ value: valid, contentType: fc.constantFrom(...MEDIA_TYPES) }) },
    { weight: 2, arbitrary: hostile }
  )
}

/** The template's {parameters} replaced, in order, by the generated segments. */
function fill (template: string, values: unknown[]) {
  let i = 0
  return template.replace(/\{[^}]+\}/g, () => {
    const value = values[i++]
    return value instanceof Live ? live(value) : String(value)
  })
}

const encode = (text: string) => encodeURIComponent(Buffer.from(text).toString())

const RAW_QUERY_VALUES = ['%zz', '%', '%00', '%ED%A0%80', '%C0%AF', '', '[]', '1&1', '1e999', '-0']

/** A query of valid parameters (each present or not), or that with one hostile parameter added. */
function queryOf (parameters: Parameter[], resolve: (ref: string) => Schema): fc.Arbitrary<string[]> {
  // An opaque value (a cursor) generated at random is never valid: it goes with the hostile ones only.
  const valid = fc.tuple(...parameters.filter(p => p.name !== 'cursor').map(p => fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    arbitraryOf(p.schema, resolve, p.name).map(v => `${p.name}=${encode(String(v))}`)
  ))).map(parts => parts.filter((p): p is string => p !== null))
  const hostile = fc.oneof(
    ...parameters.flatMap(p => [
      hostileString.map(v => `${p.name}=${encode(v)}`),
      fc.constantFrom(...RAW_QUERY_VALUES).map(v => `${p.name}=${v}`),
      fc.constant(`${p.name}=1&${p.name}=2`)
    ]),
    fc.constantFrom('__proto__=1', '__proto__[isAdmin]=1', 'constructor[prototype][x]=1', 'unknown=1', '=', '&&', '%zz=1')
  )
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: fc.tuple(valid, hostile).map(([parts, bad]) => [...parts, bad]) })
}

type Auth = ActorName | 'anonymous' | 'garbage' | 'tampered' | 'alg-none' | 'other-key' | 'expired' | 'refresh-as-access' | 'basic' | 'empty' | 'long'
const authArb: fc.Arbitrary<Auth> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<Auth>('admin', 'user', 'anonymous') },
  { weight: 2, arbitrary: fc.constantFrom<Auth>('garbage', 'tampered', 'alg-none', 'other-key', 'expired', 'refresh-as-access', 'basic', 'empty', 'long') }
)
const requestIdArb = fc.option(fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), fc.constantFrom('a'.repeat(129), 'bad id', '<x>', 'ü')), { freq: 3 })

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Json
function hs256 (claims: object, secret: string) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

t.test('schema-driven fuzzing of every operation', async t => {
  const app = await build(t)
  const document = app.swagger() as { paths: Record<string, Record<string, { parameters?: Parameter[], requestBody?: { content: Record<string, { schema: Schema }> } }>>, components: { schemas: Record<string, Schema> } }
  const resolve = (ref: string) => document.components.schemas[ref.replace('#/components/schemas/', '')]
  HINTS.fields = fc.subarray(Object.keys(document.components.schemas.UserFields.properties ?? {}), { minLength: 1 }).map(f => f.join(','))
  const operations: Operation[] = Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({
    method: method.toUpperCase(),
    path,
    parameters: op.parameters ?? [],
    body: op.requestBody?.content['application/json']?.schema,
    streams: Boolean((op as { responses?: Record<string, { content?: Record<string, unknown> }> }).responses?.['200']?.content?.['text/event-stream'])
  })))

  const makeActor = async (roles: string[]): Promise<Actor> => {
    const user = await createUser(app, { roles })
    return { ...user, sessionId: String(claimsOf(user.token).sid) }
  }
  const actors: Record<ActorName, Actor> = { admin: await makeActor(['admin']), user: await makeActor(['user']) }
  const others = await Promise.all([1, 2, 3, 4].map(() => createUser(app)))
  const roleIds: string[] = []
  // Unique names: a database kept between runs (DATABASE_URL) still has the roles of the last one.
  for (const name of [`fuzz-${randomUUID().slice(0, 8)}`, `fuzz-${randomUUID().slice(0, 8)}`]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/roles', headers: { authorization: `Bearer ${actors.admin.token}` }, payload: { name, permissions: ['users:read'] } })
    roleIds.push(res.json().data.id)
  }
  const builtIn = await app.inject({ method: 'GET', url: '/api/v1/roles', headers: { authorization: `Bearer ${actors.admin.token}` } })
  roleIds.push(...builtIn.json().data.map((role: { id: string }) => role.id))

  // The tokens of the reset and verification emails queued so far (register, forgot, resend, an email change).
  let emailTokens: string[] = []
  const readEmailTokens = async () => {
    const rows = await app.database.db.selectFrom('emailOutbox').select('payload').orderBy('createdAt', 'desc').limit(20).execute()
    emailTokens = rows.map(row => String((row.payload as { token?: string }).token))
  }
  live = ({ kind, n }) => {
    const people = [actors.admin, actors.user, ...others]
    if (kind === 'emailToken') return emailTokens.length ? emailTokens[n % emailTokens.length] : 'none-yet'
    if (kind === 'email') return people[n % people.length].email
    if (kind === 'refreshToken') return people[n % people.length].refreshToken
    const ids = [actors.admin.id, actors.user.id, actors.admin.sessionId, actors.user.sessionId, ...others.map(o => o.id), ...roleIds]
    return ids[n % ids.length]
  }
  const secret = app.config.jwtSecret
  function authorization (auth: Auth): string | undefined {
    const admin = actors.admin
    switch (auth) {
      case 'anonymous': return undefined
      case 'admin': case 'user': return `Bearer ${actors[auth].token}`
      case 'garbage': return 'Bearer not-a-token'
      case 'tampered': return `Bearer ${admin.token.slice(0, -2)}${admin.token.endsWith('AA') ? 'BB' : 'AA'}`
      case 'alg-none': return `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${admin.token.split('.')[1]}.`
      case 'other-key': return `Bearer ${hs256(claimsOf(admin.token), 'another-secret-0123456789abcdefghijkl')}`
      case 'expired': return `Bearer ${hs256({ ...claimsOf(admin.token), iat: 1_000_000, exp: 1_000_900 }, secret)}`
      case 'refresh-as-access': return `Bearer ${admin.refreshToken}`
      case 'basic': return 'Basic YWRtaW46YWRtaW4='
      case 'empty': return 'Bearer '
      case 'long': return `Bearer ${'a'.repeat(10_000)}`
    }
  }

  let requests = 0
  const statuses = new Map<number, number>()
  async function send (method: string, url: string, auth: Auth, extraHeaders: Record<string, string>, body: Body | undefined) {
    const text = body?.oversized
      ? JSON.stringify({ email: 'x'.repeat(app.config.bodyLimit) })
      : body?.text ?? (body && 'value' in body ? JSON.stringify(body.value) : undefined)
    const headers: Record<string, string> = { ...extraHeaders }
    const bearer = authorization(auth)
    if (bearer) headers.authorization = bearer
    if (body?.contentType) headers['content-type'] = body.contentType
    const options: InjectOptions = { method: method as InjectOptions['method'], url, headers, ...(text !== undefined ? { payload: text } : {}) }
    requests++
    // build() checks every answer against the document (status, body, envelope) and throws when it is off.
    const res = await app.inject(options)
    const problems: string[] = []
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode >= 500) problems.push(`a ${res.statusCode}`)
    for (const leak of LEAKS) if (leak.test(res.body)) problems.push(`the body matches ${leak}`)
    if (problems.length) {
      throw new Error(`${method} ${url} as ${auth} answered ${res.statusCode}: ${problems.join(', ')}\n  body: ${res.body.slice(0, 500)}\n  sent: ${String(text).slice(0, 300)}`)
    }
    // The fuzzer may delete, suspend, demote or log out its own actors (a password reset may be theirs): those are made again.
    const reset = url.startsWith('/api/v1/auth/password/reset') && res.statusCode < 300
    for (const name of ['admin', 'user'] as const) {
      const actor = actors[name]
      const touched = reset || (method !== 'GET' && (url.includes(actor.id) || url.includes(actor.sessionId))) ||
        (text?.includes(actor.refreshToken) ?? false) ||
        (method !== 'GET' && url.startsWith('/api/v1/auth/') && auth === name && res.statusCode < 300)
      if (touched) actors[name] = await makeActor(name === 'admin' ? ['admin'] : ['user'])
    }
    return res
  }

  const started = Date.now()
  for (const [index, op] of operations.entries()) {
    const path = fc.tuple(...op.parameters.filter(p => p.in === 'path').map(() => segment))
    const headerParams = op.parameters.filter(p => p.in === 'header')
    const headers = fc.tuple(requestIdArb, ...headerParams.map(p => fc.option(fc.oneof(fc.constantFrom('*', '"0"', 'W/"x"', '"a", "b"'), fc.string({ maxLength: 80 })))))
      .map(([requestId, ...values]) => Object.fromEntries([
        ...(requestId === null ? [] : [['x-request-id', requestId]]),
        ...headerParams.map((p, i) => [p.name, values[i]]).filter(([, v]) => v !== null)
      ]))
    const sample = fc.record({ auth: authArb, path, query: queryOf(op.parameters.filter(p => p.in === 'query'), resolve), headers, body: bodyOf(op.body, resolve, op.method) })
    const takesEmailToken = 'token' in (op.body?.properties ?? {})
    await t.resolves(fc.assert(fc.asyncProperty(sample, async ({ auth, path: values, query, headers, body }) => {
      if (takesEmailToken) await readEmailTokens()
      // A stream never ends under inject: asking for JSON makes it answer 406 once authentication and validation passed, so those are still fuzzed.
      await send(op.method, fill(op.path, values) + (query.length ? `?${query.join('&')}` : ''), auth, op.streams ? { ...headers, accept: 'application/json' } : headers, body)
    }), { seed: SEED + index, numRuns: RUNS_PER_OPERATION }), `${op.method} ${op.path}`)
  }

  // Methods no operation has on paths that exist, and paths that do not: 405 with Allow, or 404, in the envelope.
  const documented = new Set(operations.map(op => `${op.method} ${op.path}`))
  const unrouted = Object.keys(document.paths).flatMap(path => ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter(m => !documented.has(`${m} ${path}`)).map(method => ({ method, path })))
  const unroutedSample = fc.record({
    target: fc.oneof(fc.constantFrom(...unrouted), fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'),
      path: fc.constantFrom('/{a}', '/api/v1/{a}', '/api/v1/{a}/{b}', '/api/v1/users/{a}/{b}')
    })),
    values: fc.tuple(segment, segment),
    auth: authArb,
    body: bodyOf(undefined, resolve, 'POST')
  })
  await t.resolves(fc.assert(fc.asyncProperty(unroutedSample, async ({ target, values, auth, body }) => {
    await send(target.method, fill(target.path, values), auth, {}, body)
  }), { seed: SEED, numRuns: RUNS_UNROUTED }), 'unrouted methods and paths')

  t.comment(`fuzz: ${requests} requests over ${operations.length} operations in ${((Date.now() - started) / 1000).toFixed(1)} s;`,
    [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`).join(', '))
})

import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler'

type Schema = Record<string, unknown>

const isObject = (value: unknown): value is Schema => value !== null && typeof value === 'object' && !Array.isArray(value)
const isNull = (schema: unknown) => isObject(schema) && schema.type === 'null' && Object.keys(schema).length === 1
const isStringLiteral = (schema: unknown) => isObject(schema) && typeof schema.const === 'string'

/**
 * fast-json-stringify writes a union (anyOf) by running an ajv validator against each branch for
 * every value: on a 20-user page, some 200 validator calls (a date-time regex among them), half of
 * the page's serialization time (31-39 µs against 16 in a microbenchmark). Our unions have two
 * shapes it can write without checks: "X or null" is X with `nullable: true`, and a union of
 * string literals (an enum) is a string. This rewrites those, for the serializer only: ajv and the
 * OpenAPI document keep the schemas as written. (The checks it drops only ever caught our own
 * bugs, as a 500.)
 */
export function serializationSchema (schema: unknown, resolve: Resolve = () => undefined): unknown {
  if (Array.isArray(schema)) return schema.map(item => serializationSchema(item, resolve))
  if (!isObject(schema)) return schema
  const out: Schema = {}
  for (const [key, value] of Object.entries(schema)) out[key] = serializationSchema(value, resolve)
  const anyOf = out.anyOf
  if (!Array.isArray(anyOf)) return out
  const { anyOf: _, ...siblings } = out
  if (anyOf.length === 2 && anyOf.some(isNull)) {
    const other = anyOf.find(branch => !isNull(branch))
    if (isObject(other) && !('anyOf' in other)) return { ...siblings, ...other, nullable: true }
  }
  if (anyOf.every(isStringLiteral)) return { ...siblings, type: 'string', enum: anyOf.map(branch => (branch as Schema).const) }
  const merged = objectUnion(anyOf, resolve)
  return merged ? { ...siblings, ...merged } : out
}

type Resolve = (ref: string) => Schema | undefined

/** What decides how a value is written: its schema without the words for readers. */
const writtenAs = (schema: unknown) => JSON.stringify(schema, (key, value) => ['description', 'title', 'examples'].includes(key) ? undefined : value)

/**
 * A union of two object shapes (the login answer: the token pair, or the mfaRequired challenge) is
 * written as one object with the properties of both, required only where both require them: each
 * answer holds one shape, and only the properties named are written, so the output is the same.
 * As an anyOf, fast-json-stringify would have ajv compile both shapes whole, which it cannot once
 * the rewrites above put `nullable` beside a $ref (and it would cost a validation per answer).
 * Shapes that share a property with different schemas are left alone.
 */
function objectUnion (anyOf: unknown[], resolve: Resolve): Schema | undefined {
  if (anyOf.length !== 2) return undefined
  const shapes = anyOf.map(branch => isObject(branch) && typeof branch.$ref === 'string' ? resolve(branch.$ref) : branch)
  if (!shapes.every(shape => isObject(shape) && shape.type === 'object' && isObject(shape.properties))) return undefined
  const [a, b] = shapes.map(shape => serializationSchema(shape, resolve) as Schema & { properties: Schema, required?: string[] })
  for (const [name, schema] of Object.entries(b.properties)) {
    if (name in a.properties && writtenAs(a.properties[name]) !== writtenAs(schema)) return undefined
  }
  const required = (a.required ?? []).filter(name => (b.required ?? []).includes(name))
  return { type: 'object', properties: { ...a.properties, ...b.properties }, ...(required.length ? { required } : {}) }
}

/**
 * Fastify's own serializer factory (fast-json-stringify), given the rewritten schemas. Each
 * distinct schema is compiled once per process: the error envelope alone recurs for every status
 * of every route, and every app built in the process (the tests build hundreds) shares them.
 */
export const buildSerializer: SerializerFactory = (externalSchemas, options) => {
  const shared = (externalSchemas ?? {}) as Record<string, Schema>
  const resolve: Resolve = ref => shared[ref.replace(/#$/, '')]
  const rewritten = Object.fromEntries(Object.entries(shared).map(([id, schema]) => [id, serializationSchema(schema, resolve)]))
  const setting = JSON.stringify([rewritten, options ?? null])
  let known = serializers.get(setting)
  if (!known) serializers.set(setting, known = { compile: SerializerSelector()(rewritten, options), compiled: new Map() })
  const { compile, compiled } = known
  return route => {
    const schema = serializationSchema(route.schema, resolve)
    const key = JSON.stringify(schema)
    let serialize = compiled.get(key)
    if (!serialize) compiled.set(key, serialize = compile({ ...route, schema }))
    return serialize
  }
}

type Serialize = ReturnType<ReturnType<ReturnType<typeof SerializerSelector>>>
const serializers = new Map<string, { compile: ReturnType<ReturnType<typeof SerializerSelector>>, compiled: Map<string, Serialize> }>()

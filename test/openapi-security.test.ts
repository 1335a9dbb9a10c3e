import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build } from './helper.js'
import { generateOpenApi } from '../src/cli/openapi.js'

// The document's default is a Bearer token; the anonymous operations say `security: []`. Each
// operation states which it is, and the service agrees: without a token, every Bearer operation
// is 401 and no anonymous one is.
// With TEST_ENDPOINTS, as the document is generated: the test route is checked too.
const app = await build(t, {}, { TEST_ENDPOINTS: 'true' })
const document = JSON.parse(await generateOpenApi())

t.test('every operation states its security, and it is the one the service applies', async t => {
  t.same(document.security, [{ bearerAuth: [] }], 'a Bearer token is the default')
  for (const [path, item] of Object.entries<Record<string, { security?: unknown[] }>>(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(Array.isArray(operation.security), `${where} states its security`)
      // [] is anonymous; an empty requirement among others ({}) makes the token optional (GraphQL): neither is 401 without one.
      const anonymous = operation.security?.length === 0 || (operation.security ?? []).some(requirement => Object.keys(requirement as object).length === 0)
      const url = path.replace(/\{[^}]+\}/g, randomUUID())
      const res = await app.inject({ method: method.toUpperCase() as 'GET', url, ...(method === 'get' || method === 'delete' ? {} : { payload: {} }) })
      if (anonymous) t.not(res.statusCode, 401, `${where} is anonymous: ${res.statusCode} without a token`)
      else t.equal(res.statusCode, 401, `${where} needs a token`)
    }
  }
})

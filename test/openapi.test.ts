import { readFile } from 'node:fs/promises'
import t from 'tap'
import SwaggerParser from '@apidevtools/swagger-parser'
import { generateOpenApi } from '../src/cli/openapi.js'

t.test('the committed OpenAPI document is what the code generates', async t => {
  const generated = await generateOpenApi()
  const committed = await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8')
  t.ok(generated === committed, 'openapi/openapi.json is stale: run `npm run openapi` and commit it')
})

t.test('the document is valid OpenAPI 3 and describes every operation fully', async t => {
  const document = JSON.parse(await generateOpenApi())
  await t.resolves(SwaggerParser.validate(structuredClone(document)), 'passes the OpenAPI validator')
  t.match(document.openapi, /^3\./)
  for (const name of ['User', 'Profile', 'Error', 'Pagination']) t.ok(document.components.schemas[name], `components.schemas.${name}`)

  const operationIds = new Set<string>()
  for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
    for (const [method, operation] of Object.entries<any>(item)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(operation.operationId, `${where} has an operationId`)
      t.notOk(operationIds.has(operation.operationId), `${where} operationId is unique`)
      operationIds.add(operation.operationId)
      t.ok(operation.tags?.length, `${where} has tags`)
      t.ok(operation.summary, `${where} has a summary`)
      const statuses = Object.keys(operation.responses)
      // A browser sign-in step succeeds with a redirect (the contract's OpenID Connect authorize and callback), a WebSocket with 101.
      t.ok(statuses.some(s => s.startsWith('2') || s === '302' || s === '101'), `${where} documents a success`)
      for (const status of statuses.filter(s => Number(s) >= 400)) {
        const schema = operation.responses[status].content?.['application/json']?.schema
        t.equal(schema?.$ref, '#/components/schemas/Error', `${where} ${status} uses the error envelope`)
      }
      if (path.startsWith('/api/v1/') && path !== '/api/v1/health') {
        t.ok(statuses.includes('429'), `${where} documents 429`)
      }
      if (path.includes('{id}')) t.ok(statuses.includes('400'), `${where} documents 400 for a malformed id`)
      if (method === 'patch') {
        t.same(Object.keys(operation.requestBody.content).sort(), ['application/json', 'application/merge-patch+json'], `${where} takes a merge patch in either media type`)
      }
    }
  }
  t.ok(document.paths['/api/v1/users/{id}'].get.responses['304'], 'GET user documents 304')
  t.notOk(document.paths['/openapi.json'], '/openapi.json is not in the document')
})

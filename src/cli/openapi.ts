// Regenerates openapi/openapi.json from the routes' schemas, and openapi/schema.graphql from the GraphQL type definitions (npm run openapi).
import { mkdir, writeFile } from 'node:fs/promises'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { printedSchema } from '../routes/graphql/schema.js'

export async function generateOpenApi () {
  // The test routes are in the document, tagged `test`; a service serves them only with TEST_ENDPOINTS=true.
  const app = await buildApp({ ...loadConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', TEST_ENDPOINTS: 'true' }) })
  await app.ready()
  const document = app.swagger()
  await app.close()
  return `${JSON.stringify(document, null, 2)}\n`
}

export const generateGraphqlSchema = () => `${printedSchema()}\n`

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = await generateOpenApi()
  await mkdir('openapi', { recursive: true })
  await writeFile('openapi/openapi.json', text)
  console.log('wrote openapi/openapi.json')
  await writeFile('openapi/schema.graphql', generateGraphqlSchema())
  console.log('wrote openapi/schema.graphql')
}

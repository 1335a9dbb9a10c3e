import { readFile } from 'node:fs/promises'
import t from 'tap'
import { generateSdkTypes, TYPES } from '../sdk/scripts/generate-types.js'

t.test('the SDK types are what openapi-typescript makes of the committed document', async t => {
  const committed = await readFile(TYPES, 'utf8')
  t.ok(await generateSdkTypes() === committed, 'sdk/src/schema.ts differs from openapi/openapi.json: run `npm run openapi` and commit both')
})

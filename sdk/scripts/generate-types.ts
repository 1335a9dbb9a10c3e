// Regenerates sdk/src/schema.ts from openapi/openapi.json (npm run sdk:types; npm run openapi runs it too).
// test/sdk-types.test.ts calls generateSdkTypes to catch a committed file that drifted from the document.
import { readFile, writeFile } from 'node:fs/promises'
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript'

export const DOCUMENT = new URL('../../openapi/openapi.json', import.meta.url)
export const TYPES = new URL('../src/schema.ts', import.meta.url)

export async function generateSdkTypes (): Promise<string> {
  const document = JSON.parse(await readFile(DOCUMENT, 'utf8'))
  const ast = await openapiTS(document, { silent: true })
  return COMMENT_HEADER.replace(' */', ' * Source: openapi/openapi.json; regenerate with `npm run openapi`.\n */') + astToString(ast)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await writeFile(TYPES, await generateSdkTypes())
  console.log('wrote sdk/src/schema.ts')
}

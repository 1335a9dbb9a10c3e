// Regenerates openapi/openapi.json from the routes' schemas (npm run openapi).
import { mkdir, writeFile } from 'node:fs/promises'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

export async function generateOpenApi () {
  const app = await buildApp({ ...loadConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent' }) })
  await app.ready()
  const document = app.swagger()
  await app.close()
  return `${JSON.stringify(document, null, 2)}\n`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = await generateOpenApi()
  await mkdir('openapi', { recursive: true })
  await writeFile('openapi/openapi.json', text)
  console.log('wrote openapi/openapi.json')
}

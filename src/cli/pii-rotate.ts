// npm run pii:rotate: reseals personal data under the first key of PII_ENCRYPTION_KEYS (and seals
// clear values, when the keys are first configured), in batches, while the service runs.
import pino from 'pino'
import { ConfigError, loadConfig } from '../config.js'
import { connectDatabase } from '../db/connect.js'
import { assertMigrated, createMigrator } from '../db/migrate.js'
import { rotatePii } from '../services/pii.js'

const batchSize = Number(process.env.PII_ROTATE_BATCH ?? 500)
try {
  const config = loadConfig()
  const database = await connectDatabase(config, pino({ level: config.logLevel }))
  try {
    assertMigrated(await createMigrator(database.db).migrateToLatest())
    const result = await rotatePii(database.db, { batchSize })
    console.log(`current key: ${result.currentKid}`)
    for (const t of result.tables) {
      console.log(`${t.table}: ${t.scanned} rows read, ${t.resealed} values resealed from an older key, ${t.sealedFromClear} sealed from clear, ${t.rowsWritten} rows written, ${t.changedMeanwhile} changed meanwhile`)
    }
    if (result.tables.some(t => t.changedMeanwhile > 0)) console.log('rows changed meanwhile may still hold values under an older key: run again')
    else console.log(`nothing is left under another key${result.forgottenKids.length ? `; forgotten: ${result.forgottenKids.join(', ')} (may now leave PII_ENCRYPTION_KEYS)` : ''}`)
  } finally {
    await database.close()
  }
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(`Configuration error: ${err.message}`)
  process.exitCode = 1
}

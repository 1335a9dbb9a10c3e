// npm run migrate -- up | down | status
import pino from 'pino'
import { loadConfig } from '../config.js'
import { connectDatabase } from '../db/connect.js'
import { assertMigrated, createMigrator } from '../db/migrate.js'

const command = process.argv[2] ?? 'up'
const config = loadConfig()
const log = pino({ level: config.logLevel })
const database = await connectDatabase(config, log)
const migrator = createMigrator(database.db)
try {
  if (command === 'up') {
    for (const m of assertMigrated(await migrator.migrateToLatest())) console.log(`${m.direction} ${m.migrationName}: ${m.status}`)
    console.log('database is up to date')
  } else if (command === 'down') {
    for (const m of assertMigrated(await migrator.migrateDown())) console.log(`${m.direction} ${m.migrationName}: ${m.status}`)
  } else if (command === 'status') {
    for (const m of await migrator.getMigrations()) console.log(`${m.executedAt ? 'applied' : 'pending'}  ${m.name}${m.executedAt ? `  (${m.executedAt.toISOString()})` : ''}`)
  } else {
    console.error(`unknown command "${command}": use up, down or status`)
    process.exitCode = 2
  }
} finally {
  await database.close()
}

// npm run retention: runs the retention purge now (as the hourly job would) and prints what went.
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

const config = loadConfig()
// This process only purges: no email, webhook or scheduled work of its own.
const app = await buildApp({ ...config, emailPollIntervalMs: 0, webhookPollIntervalMs: 0, retentionIntervalMs: 0 })
try {
  await app.ready()
  const report = await app.retention.run()
  if (report) console.log(JSON.stringify({ purged: report }))
  else {
    console.error('another instance is running the retention purge now; nothing done')
    process.exitCode = 1
  }
} finally {
  await app.close()
}

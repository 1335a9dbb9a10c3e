import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

function configurationError (err: unknown): never {
  if (err instanceof ConfigError) {
    console.error(`Configuration error: ${err.message}`)
    process.exit(1)
  }
  throw err
}

let config
try {
  config = loadConfig()
} catch (err) {
  configurationError(err)
}

// Some configuration is checked against the database (PII_ENCRYPTION_KEYS against the data it sealed).
const app = await buildApp(config).catch(configurationError)
app.server.keepAliveTimeout = 72_000
app.server.headersTimeout = 75_000
app.server.requestTimeout = 30_000
// A keep-alive connection whose response ends after closing began would stay open until
// keepAliveTimeout (and the grace delay would kill the process): close each as it goes idle.
app.addHook('preClose', done => {
  const timer = setInterval(() => app.server.closeIdleConnections(), 50).unref()
  app.server.once('close', () => clearInterval(timer))
  done()
})

// Connections already queued in the kernel's backlog when the listener closes would be reset
// unanswered: keep accepting a moment longer, so that each gets its 503 with Retry-After (app.ts
// answers requests that arrive while closing) and its client can retry elsewhere.
const BACKLOG_DRAIN_MS = 500
app.addHook('preClose', async () => { await new Promise(resolve => setTimeout(resolve, BACKLOG_DRAIN_MS)) })

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing because of an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.error({ err }, 'could not start listening')
  process.exit(1)
}

// The process entry. argon2 hashes on libuv's thread pool, which reads UV_THREADPOOL_SIZE once,
// when first used, and Node's ES module loader already uses the pool to read server.js: set
// from there the size would come too late (4 threads, each keeping a 19 MiB argon2 arena).
// A CommonJS entry is read synchronously, so the pool is sized before anything touches it.
// More threads than cores only adds memory and contention.
const { availableParallelism } = require('node:os') as typeof import('node:os')

process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()))

// Tracing patches http, pg, ioredis and pino as they load, so it comes before server.js imports
// them; only when an OTLP endpoint is configured: off, not one of its modules is loaded.
if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT && process.env.OTEL_SDK_DISABLED?.toLowerCase() !== 'true') require('./tracing.cjs')

import('./server.js').catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})

import { availableParallelism } from 'node:os'

// argon2 hashes on libuv's thread pool; more threads than cores only adds memory (19 MiB each
// while hashing) and contention. Must run before anything uses the pool: server.ts imports it first.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()))

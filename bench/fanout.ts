// Fan-out across instances: PostgreSQL LISTEN/NOTIFY against Redis pub/sub, on this machine.
// `npx tsx bench/fanout.ts` (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; REDIS_URL, default
// redis://127.0.0.1:6379). One sender, one receiver on another connection, as two instances would be:
// - latency: one message at a time, from the send to its receipt (p50, p99, max);
// - burst: BURST messages sent at once, the time until the receiver has them all.
import { Redis } from 'ioredis'
import pg from 'pg'

const ROUNDS = Number(process.env.FANOUT_ROUNDS ?? 2000)
const BURST = Number(process.env.FANOUT_BURST ?? 5000)
const PAYLOAD = JSON.stringify({ id: '7d1f3c52-2b6e-4a39-9a57-1c3f0a5f8e21', seq: 123456, type: 'user.updated', userId: '0b0f6a1e-9f4c-4d8e-8a43-5c2e6b7d9f10', actorId: null })

interface Channel { send (payload: string): Promise<void>, onMessage (listener: (payload: string) => void): void, close (): Promise<void> }

async function postgres (): Promise<Channel> {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  // A pool, as the service's writers are: a burst comes from several transactions at once.
  const sender = new pg.Pool({ connectionString: url, max: 8 })
  const receiver = new pg.Client({ connectionString: url })
  await receiver.connect()
  await receiver.query('LISTEN bench_fanout')
  return {
    // One statement in its own (implicit) transaction: delivered at its commit, as a trigger's NOTIFY is at the writer's.
    async send (payload) { await sender.query("select pg_notify('bench_fanout', $1)", [payload]) },
    onMessage (listener) { receiver.on('notification', message => listener(message.payload ?? '')) },
    async close () { await Promise.all([sender.end(), receiver.end()]) }
  }
}

async function redis (): Promise<Channel> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const sender = new Redis(url)
  const receiver = new Redis(url)
  await receiver.subscribe('bench_fanout')
  return {
    async send (payload) { await sender.publish('bench_fanout', payload) },
    onMessage (listener) { receiver.on('message', (_channel, message) => listener(message)) },
    async close () { sender.disconnect(); receiver.disconnect() }
  }
}

async function measure (name: string, channel: Channel) {
  let waiting: (() => void) | undefined
  let received = 0
  channel.onMessage(() => { received++; waiting?.() })
  const next = (count: number) => new Promise<void>(resolve => {
    if (received >= count) return resolve()
    waiting = () => { if (received >= count) { waiting = undefined; resolve() } }
  })
  const latencies: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now()
    const arrived = next(received + 1)
    await channel.send(PAYLOAD)
    await arrived
    latencies.push(performance.now() - started)
  }
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(2)
  const before = received
  const started = performance.now()
  const all = next(before + BURST)
  await Promise.all(Array.from({ length: BURST }, () => channel.send(PAYLOAD)))
  await all
  const burstMs = performance.now() - started
  console.log(`${name}: latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms (${ROUNDS} one at a time); ` +
    `burst of ${BURST}: ${burstMs.toFixed(0)} ms (${Math.round(BURST / burstMs * 1000)}/s)`)
  await channel.close()
}

await measure('PostgreSQL LISTEN/NOTIFY', await postgres())
await measure('Redis pub/sub', await redis())

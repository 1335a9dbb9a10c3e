/**
 * A small key-value store whose entries expire. Asynchronous on purpose: the in-process one below
 * serves a single instance; a Redis-backed one (SET key value EX ttl / GET) can implement the same
 * interface for several instances without changing its callers. Values must survive JSON.
 */
export interface TtlCache<T> {
  get (key: string): Promise<T | undefined>
  set (key: string, value: T, ttlSec: number): Promise<void>
  delete (key: string): Promise<void>
}

/** In-process TtlCache: a Map kept in insertion order, so the oldest entries go first when it is full. */
export function createMemoryTtlCache<T> (maxEntries = 10_000, now = () => Date.now()): TtlCache<T> {
  const entries = new Map<string, { value: T, expiresAt: number }>()
  return {
    async get (key) {
      const entry = entries.get(key)
      if (!entry) return undefined
      if (entry.expiresAt <= now()) {
        entries.delete(key)
        return undefined
      }
      return entry.value
    },
    async set (key, value, ttlSec) {
      entries.delete(key)
      if (ttlSec <= 0) return
      entries.set(key, { value, expiresAt: now() + ttlSec * 1000 })
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break
        entries.delete(oldest)
      }
    },
    async delete (key) {
      entries.delete(key)
    }
  }
}

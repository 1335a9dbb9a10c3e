/**
 * Caches what an access token's validity depends on (user status, permissions, whether its
 * login is still active), so authenticating a request costs no query on the hot path.
 *
 * Any write may change that state, so a write clears the cache before its response leaves
 * (clear()), and writes made by other instances clear it through the database's notifications.
 * A lookup that started before a clear never stores its (possibly stale) answer: the
 * generation it read must still be current when it finishes.
 */
export class AuthStateCache<T> {
  private readonly entries = new Map<string, { value: T, expiresAt: number }>()
  private generation = 0
  private enabled = true

  constructor (private readonly ttlMs: number, private readonly maxEntries = 50_000) {}

  async get (key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now()
    const hit = this.entries.get(key)
    if (hit && hit.expiresAt > now) return hit.value
    const generation = this.generation
    const value = await load()
    if (this.enabled && generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.clear()
      this.entries.set(key, { value, expiresAt: now + this.ttlMs })
    }
    return value
  }

  clear () {
    this.generation++
    this.entries.clear()
  }

  /** Without a way to hear other instances' writes, caching would serve stale state: turn it off. */
  setEnabled (enabled: boolean) {
    this.enabled = enabled
    this.clear()
  }

  get size () { return this.entries.size }
}

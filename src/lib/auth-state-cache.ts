/**
 * Caches what an access token's validity depends on (user status, permissions, whether its
 * login is still active), so authenticating a request costs no query on the hot path.
 *
 * Entries are dropped when the database reports a change to a user's auth state (a trigger
 * notifies every instance), and a write request of this instance clears them before its
 * response leaves, so no client ever sees a revoked token accepted after being told it was
 * revoked. A lookup that started before a drop never stores its possibly stale answer.
 */
export class AuthStateCache<T> {
  private readonly users = new Map<string, Map<string, { value: T, expiresAt: number }>>()
  private generation = 0
  private enabled = false
  private size = 0

  constructor (private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  async get (userId: string, sessionId: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now()
    const hit = this.users.get(userId)?.get(sessionId)
    if (hit && hit.expiresAt > now) return hit.value
    const generation = this.generation
    const value = await load()
    if (this.enabled && generation === this.generation) {
      if (this.size >= this.maxEntries) this.clear()
      let sessions = this.users.get(userId)
      if (!sessions) this.users.set(userId, sessions = new Map())
      if (!sessions.has(sessionId)) this.size++
      sessions.set(sessionId, { value, expiresAt: now + this.ttlMs })
    }
    return value
  }

  clearUser (userId: string) {
    this.generation++
    const sessions = this.users.get(userId)
    if (sessions) {
      this.size -= sessions.size
      this.users.delete(userId)
    }
  }

  clear () {
    this.generation++
    this.users.clear()
    this.size = 0
  }

  /** Caching is only safe while change notifications arrive; without them every lookup goes to the database. */
  setEnabled (enabled: boolean) {
    this.enabled = enabled
    this.clear()
  }
}

import type { DB } from '../db/connect.js'
import { unauthorized } from '../errors.js'
import { AuthStateCache } from '../lib/auth-state-cache.js'
import { findAuthState } from '../repositories/sessions.js'
import type { Actor } from './context.js'

// A safety net only: entries are dropped as soon as a change is reported.
const AUTH_STATE_TTL_MS = 60_000

/** A login that still counts, with its permissions made once (not per request). */
type LiveLogin = { permissions: ReadonlySet<string> } | null

/**
 * Whether a signed access token still stands for someone: its user is there and not suspended,
 * and its login was not ended. Answers come from a cache that database notifications and this
 * instance's own writes clear (see AuthStateCache), so a revocation takes effect at once.
 */
export function createAuthStateService ({ db }: { db: DB }) {
  const logins = new AuthStateCache<LiveLogin>(AUTH_STATE_TTL_MS)

  async function load (userId: string, sessionId: string): Promise<LiveLogin> {
    const state = await findAuthState(db, userId, sessionId)
    if (!state || state.deletedAt !== null || state.status === 'suspended' || !state.sessionActive) return null
    return { permissions: new Set(state.permissions) }
  }

  return {
    async actorOf (userId: string, sessionId: string): Promise<Actor> {
      const login = await logins.get(userId, sessionId, () => load(userId, sessionId))
      if (!login) throw unauthorized('The access token is no longer valid')
      return { id: userId, sessionId, permissions: login.permissions }
    },
    /** A change reported for one user, or for everyone ('*': a role changed). */
    changed (userId: string) {
      if (userId === '*') logins.clear()
      else logins.clearUser(userId)
    },
    /** Off while changes may go unreported (the notification connection is down). */
    setCaching (enabled: boolean) {
      logins.setEnabled(enabled)
    },
    forgetAll () {
      logins.clear()
    }
  }
}

export type AuthStateService = ReturnType<typeof createAuthStateService>

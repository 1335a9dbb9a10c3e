import { createHash, randomUUID } from 'node:crypto'
import { normalizeIP } from '@fastify/rate-limit'
import type { Config } from '../config.js'
import { rateLimited } from '../errors.js'
import type { AttemptOutcome, AttemptStore, Budget } from '../lib/login-attempts.js'
import type { RequestContext } from './context.js'

/**
 * Login throttling. login() begins an attempt before it looks at the password (begin throws 429
 * RATE_LIMITED while the account or address is locked) and ends it with its outcome: a wrong
 * password (or second-factor code) counts as a failure, a right one never does. Unknown emails fail the same way, so a
 * lockout does not reveal which accounts exist.
 */
export interface LoginGuard {
  begin (email: string, ctx: RequestContext): Promise<LoginAttempt>
}

export interface LoginAttempt {
  end (outcome: AttemptOutcome): Promise<void>
}

// Keyed by a hash: Redis never holds an email address.
const accountKey = (email: string) => `login:account:${createHash('sha256').update(email.trim().toLowerCase()).digest('base64url')}`
const ipKey = (ip: string) => `login:ip:${normalizeIP(ip)}`

/** How long a login waits for a place among the attempts running on its account before a 429. */
const MAX_WAIT_MS = 10_000
/** How often a waiting login looks again, for places freed on other instances. */
const RETRY_MS = 25

/**
 * Login lockout. LOGIN_MAX_FAILURES failed logins for one account (normalised email, known or
 * not, so a lock reveals nothing) within LOGIN_LOCK_WINDOW lock that account until the window
 * ends, whatever the password; LOGIN_IP_MAX_FAILURES do the same for one client IP across
 * accounts (password spraying). The window starts at the first failure.
 *
 * Only failures count. So that parallel guesses cannot get past the limit either, a password is
 * checked only while the failures so far plus the checks running now stay under it; a login
 * beyond that waits for a running check to end (most often a success, which frees its place
 * and clears the account's count), so 50 parallel correct logins all succeed, a few at a time.
 */
export function createLoginThrottle (store: AttemptStore, config: Pick<Config, 'loginMaxFailures' | 'loginLockWindowMs' | 'loginIpMaxFailures'>): LoginGuard {
  const windowMs = config.loginLockWindowMs
  // Logins of this instance waiting for a place, woken as soon as one of its own attempts ends.
  const waiting = new Map<string, Set<() => void>>()

  function waitForPlace (key: string): Promise<void> {
    return new Promise(resolve => {
      const waiters = waiting.get(key) ?? new Set()
      waiting.set(key, waiters)
      const wake = () => {
        clearTimeout(timer)
        waiters.delete(wake)
        if (waiters.size === 0 && waiting.get(key) === waiters) waiting.delete(key)
        resolve()
      }
      const timer = setTimeout(wake, RETRY_MS)
      waiters.add(wake)
    })
  }

  return {
    async begin (email, ctx) {
      const budgets: Budget[] = [{ key: accountKey(email), max: config.loginMaxFailures }]
      if (ctx.ip) budgets.push({ key: ipKey(ctx.ip), max: config.loginIpMaxFailures })
      const attemptId = randomUUID()
      const giveUpAt = Date.now() + MAX_WAIT_MS
      for (;;) {
        const result = await store.acquire(budgets, attemptId)
        if (result.state === 'acquired') break
        const ofAccount = result.budget === 0
        if (result.state === 'locked') {
          throw rateLimited(result.ttlMs / 1000, ofAccount
            ? 'Too many failed logins for this account; try again later'
            : 'Too many failed logins from this address; try again later')
        }
        if (Date.now() >= giveUpAt) throw rateLimited(1, 'Too many logins at once; try again shortly')
        await waitForPlace(budgets[result.budget].key)
      }
      return {
        async end (outcome) {
          try {
            await store.end(budgets, attemptId, outcome, windowMs)
          } finally {
            for (const { key } of budgets) for (const wake of [...(waiting.get(key) ?? [])]) wake()
          }
        }
      }
    }
  }
}

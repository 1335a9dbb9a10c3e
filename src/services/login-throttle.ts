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
  /** Ends the attempt; true when this failure locked the account (callers record an auth.lockout). */
  end (outcome: AttemptOutcome): Promise<boolean>
}

// Keyed by a hash: Redis never holds an email address.
const accountKey = (email: string) => `login:account:${createHash('sha256').update(email.trim().toLowerCase()).digest('base64url')}`
const ipKey = (ip: string) => `login:ip:${normalizeIP(ip)}`

/** How long a login waits for a place among the attempts running on its account before a 429. */
const MAX_WAIT_MS = 10_000
/** How often a waiting login looks again, for places freed on other instances. */
const RETRY_MS = 25

interface Waiter { wake: () => void, poll?: NodeJS.Timeout }

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
  // Logins of this instance waiting for a place, first come first served per key. Each place freed
  // here wakes one of them (waking them all cost a Redis call per waiter on every end); only the
  // first in line also polls every RETRY_MS, for places freed on other instances.
  const queues = new Map<string, Waiter[]>()

  function wakeFirst (key: string) {
    queues.get(key)?.[0]?.wake()
  }

  /** Resolves when this login may try again. One that was woken but found no place keeps the front. */
  function waitForPlace (key: string, front: boolean): Promise<void> {
    return new Promise(resolve => {
      const queue = queues.get(key) ?? []
      queues.set(key, queue)
      const waiter: Waiter = {
        wake () {
          clearTimeout(waiter.poll)
          queue.splice(queue.indexOf(waiter), 1)
          if (queue.length === 0) queues.delete(key)
          else queue[0].poll ??= setTimeout(() => queue[0]?.wake(), RETRY_MS)
          resolve()
        }
      }
      if (front) queue.unshift(waiter)
      else queue.push(waiter)
      if (queue[0] === waiter) waiter.poll = setTimeout(waiter.wake, RETRY_MS)
    })
  }

  return {
    async begin (email, ctx) {
      const budgets: Budget[] = [{ key: accountKey(email), max: config.loginMaxFailures }]
      if (ctx.ip) budgets.push({ key: ipKey(ctx.ip), max: config.loginIpMaxFailures })
      const attemptId = randomUUID()
      const giveUpAt = Date.now() + MAX_WAIT_MS
      let woken = false
      for (;;) {
        // Newcomers queue behind logins already waiting here, so none of those starves.
        const waitingKey = woken ? undefined : budgets.find(({ key }) => queues.has(key))?.key
        const result = waitingKey === undefined ? await store.acquire(budgets, attemptId) : { state: 'busy' as const, budget: budgets.findIndex(b => b.key === waitingKey) }
        if (result.state === 'acquired') {
          // The place may not have been the last one free: let the next in line look too.
          for (const { key } of budgets) wakeFirst(key)
          break
        }
        const ofAccount = result.budget === 0
        if (result.state === 'locked') {
          for (const { key } of budgets) wakeFirst(key)
          throw rateLimited(result.ttlMs / 1000, ofAccount
            ? 'Too many failed logins for this account; try again later'
            : 'Too many failed logins from this address; try again later')
        }
        if (Date.now() >= giveUpAt) throw rateLimited(1, 'Too many logins at once; try again shortly')
        await waitForPlace(budgets[result.budget].key, woken)
        woken = true
      }
      return {
        async end (outcome) {
          try {
            return await store.end(budgets, attemptId, outcome, windowMs)
          } finally {
            for (const { key } of budgets) wakeFirst(key)
          }
        }
      }
    }
  }
}

import { createHash } from 'node:crypto'
import { normalizeIP } from '@fastify/rate-limit'
import type { Config } from '../config.js'
import { rateLimited } from '../errors.js'
import type { WindowCounter } from '../lib/window-counter.js'
import type { LoginGuard } from './auth.js'

// Keyed by a hash: Redis never holds an email address.
const accountKey = (email: string) => `login:account:${createHash('sha256').update(email.trim().toLowerCase()).digest('base64url')}`
const ipKey = (ip: string) => `login:ip:${normalizeIP(ip)}`

/**
 * Login lockout. LOGIN_MAX_FAILURES failed logins for one account (normalised email, known or
 * not, so a lock reveals nothing) within LOGIN_LOCK_WINDOW lock that account until the window
 * ends, whatever the password; LOGIN_IP_MAX_FAILURES do the same for one client IP across
 * accounts (password spraying). The window starts at the first failure.
 *
 * Each attempt is counted up front, in assertAllowed, before the password is checked, and a
 * success takes it back: for one-at-a-time attempts that is exactly "count the failures", and
 * parallel guesses cannot all slip through while the count still looks low.
 */
export function createLoginThrottle (counter: WindowCounter, config: Pick<Config, 'loginMaxFailures' | 'loginLockWindowMs' | 'loginIpMaxFailures'>): LoginGuard {
  const windowMs = config.loginLockWindowMs
  return {
    async assertAllowed (email, ctx) {
      const [account, client] = await Promise.all([
        counter.hit(accountKey(email), windowMs),
        ctx.ip ? counter.hit(ipKey(ctx.ip), windowMs) : undefined
      ])
      if (account.count > config.loginMaxFailures) {
        throw rateLimited(account.ttlMs / 1000, 'Too many failed logins for this account; try again later')
      }
      if (client && client.count > config.loginIpMaxFailures) {
        throw rateLimited(client.ttlMs / 1000, 'Too many failed logins from this address; try again later')
      }
    },
    // Already counted by assertAllowed.
    async recordFailure () {},
    async recordSuccess (email, ctx) {
      await Promise.all([
        counter.reset(accountKey(email)),
        ctx.ip ? counter.hit(ipKey(ctx.ip), windowMs, -1) : undefined
      ])
    }
  }
}

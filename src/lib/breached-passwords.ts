import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { NO_METRICS, type AppMetrics } from './app-metrics.js'
import { createMemoryTtlCache, type TtlCache } from './ttl-cache.js'

/** Whether a password is known from breaches; false when the check is off or could not answer. */
export type BreachCheck = (password: string) => Promise<boolean>

export const BREACH_CHECK_TIMEOUT_MS = 2000
/** A range changes only when the list is republished (months apart): an hour is fresh enough. */
const RANGE_TTL_SEC = 3600
/** A range is about 800 to 1000 suffixes (some 35 KB): this bounds the cache to a few tens of MB. */
const MAX_RANGES = 1000

export interface BreachCheckOptions {
  /** The range API's base URL; GET <url>/<5 hex> answers `SUFFIX:COUNT` lines (Pwned Passwords). */
  url: string
  log: FastifyBaseLogger
  metrics?: AppMetrics
  timeoutMs?: number
  cache?: TtlCache<string[]>
}

/**
 * The k-anonymity range check: only the first five hex characters of the password's SHA-1 leave
 * the service; the answer lists the suffixes of every breached password in that range, compared
 * here. `Add-Padding` asks for decoy lines (count 0) so the answer's size says nothing either; they
 * are dropped. A range is cached, so repeated checks in one range cost no request. When the API
 * does not answer within the timeout, or fails, the password is let through (the check protects
 * users; it must not stop them registering): logged without the password or its hash, and counted.
 */
export function createBreachCheck ({ url, log, metrics = NO_METRICS, timeoutMs = BREACH_CHECK_TIMEOUT_MS, cache = createMemoryTtlCache<string[]>(MAX_RANGES) }: BreachCheckOptions): BreachCheck {
  const base = url.replace(/\/+$/, '')

  async function rangeOf (prefix: string): Promise<Set<string> | undefined> {
    const cached = await cache.get(prefix)
    if (cached) return new Set(cached)
    let body: string
    try {
      const res = await fetch(`${base}/${prefix}`, { headers: { 'add-padding': 'true' }, signal: AbortSignal.timeout(timeoutMs) })
      if (!res.ok) throw Object.assign(new Error('the range API failed'), { status: res.status })
      body = await res.text()
    } catch (err) {
      const reason = (err as Error).name === 'TimeoutError' ? 'timeout' : 'error'
      metrics.breachCheckFailed(reason)
      // Not the error's message: fetch's can quote the URL, and with it the hash's prefix.
      const { status, cause } = err as { status?: number, cause?: { code?: string } }
      log.warn({ reason, status, code: cause?.code }, 'breached-password check failed; password let through')
      return undefined
    }
    const suffixes: string[] = []
    for (const line of body.split('\n')) {
      const [suffix, count] = line.trim().split(':')
      if (suffix && Number(count) > 0) suffixes.push(suffix.toUpperCase())
    }
    await cache.set(prefix, suffixes, RANGE_TTL_SEC)
    return new Set(suffixes)
  }

  return async password => {
    const sha1 = createHash('sha1').update(password).digest('hex').toUpperCase()
    const range = await rangeOf(sha1.slice(0, 5))
    return range?.has(sha1.slice(5)) ?? false
  }
}

/** The check PASSWORD_BREACH_CHECK_URL asks for, or none. */
export const NO_BREACH_CHECK: BreachCheck = async () => false

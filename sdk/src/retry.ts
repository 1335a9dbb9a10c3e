export type Fetch = (request: Request) => Promise<Response>

export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retries off). */
  maxAttempts?: number
  /** The longest Retry-After to wait for (default 10 s); a longer one is answered at once with the error. */
  maxDelayMs?: number
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

const KEYED = 'idempotency-key'
/** How long to wait before asking again about a keyed request still running elsewhere (no Retry-After there), per attempt so far. */
const IN_PROGRESS_DELAY_MS = 250

/**
 * Whether to send the request again, and after how long (undefined: not). Only when the service
 * said when to come back (Retry-After), or when the request carries an Idempotency-Key:
 * - 429, any method: the service's rate limiter and login lockout refuse before a handler runs,
 *   so nothing was done and a POST is as safe to resend as a GET.
 * - 503, idempotent methods and keyed requests only: the service answers it when its database
 *   connection failed, which normally rolls the work back, but a connection lost during a commit
 *   cannot say whether it committed, so a POST or PATCH without a key is left to the caller. With
 *   a key the service answers a retry of work that was done with its stored response.
 * - 409 IDEMPOTENCY_IN_PROGRESS on a keyed request: the first send is still running; asking
 *   again a little later gets its answer.
 */
async function retryDelay (request: Request, response: Response, attempt: number): Promise<number | undefined> {
  const keyed = request.headers.has(KEYED)
  if (response.status === 409 && keyed) {
    const body = await response.clone().json().catch(() => undefined) as { error?: { code?: string } } | undefined
    return body?.error?.code === 'IDEMPOTENCY_IN_PROGRESS' ? IN_PROGRESS_DELAY_MS * attempt : undefined
  }
  if (!response.headers.has('retry-after')) return undefined
  return response.status === 429 || (response.status === 503 && (IDEMPOTENT.has(request.method) || keyed)) ? delayOf(response) : undefined
}

/** Retry-After in milliseconds: seconds, or an HTTP date. */
function delayOf (response: Response): number {
  const value = response.headers.get('retry-after') ?? ''
  const seconds = Number(value)
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? Infinity : Math.max(0, date - Date.now())
}

/** Waits, or rejects when the signal aborts first. */
export function sleep (ms: number, signal: AbortSignal | null): Promise<void> {
  // Older React Native signals carry no reason.
  const aborted = () => signal?.reason ?? new Error('The request was aborted')
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted())
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort)
      resolve()
    }, ms)
    function abort () {
      clearTimeout(timer)
      reject(aborted())
    }
    signal?.addEventListener('abort', abort, { once: true })
  })
}

/**
 * Wraps fetch: resends after 429/503 as Retry-After says, within the attempts and delay bounds. A
 * request with an Idempotency-Key is also resent, with the same key, after 409 IDEMPOTENCY_IN_PROGRESS
 * and after a failure that left no answer (a lost connection): the service does its work once.
 */
export function retrying (fetch: Fetch, { maxAttempts = 3, maxDelayMs = 10_000 }: RetryOptions = {}): Fetch {
  return async function fetchWithRetry (request) {
    for (let attempt = 1; ; attempt++) {
      let response: Response
      try {
        // A clone per attempt: a body can be sent once, and the original stays unread for the next.
        response = await fetch(request.clone())
      } catch (err) {
        if (attempt >= maxAttempts || !request.headers.has(KEYED) || request.signal?.aborted) throw err
        await sleep(IN_PROGRESS_DELAY_MS * attempt, request.signal)
        continue
      }
      if (attempt >= maxAttempts) return response
      const delay = await retryDelay(request, response, attempt)
      if (delay === undefined || delay > maxDelayMs) return response
      await response.body?.cancel()
      await sleep(delay, request.signal)
    }
  }
}

export type Fetch = (request: Request) => Promise<Response>

export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retries off). */
  maxAttempts?: number
  /** The longest Retry-After to wait for (default 10 s); a longer one is answered at once with the error. */
  maxDelayMs?: number
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/**
 * Whether to send the request again. Only when the service said when to come back (Retry-After):
 * - 429, any method: the service's rate limiter and login lockout refuse before a handler runs,
 *   so nothing was done and a POST is as safe to resend as a GET.
 * - 503, idempotent methods only: the service answers it when its database connection failed,
 *   which normally rolls the work back, but a connection lost during a commit cannot say whether
 *   it committed, so a POST or PATCH is left to the caller.
 */
function mayRetry (request: Request, response: Response): boolean {
  if (!response.headers.has('retry-after')) return false
  return response.status === 429 || (response.status === 503 && IDEMPOTENT.has(request.method))
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

/** Wraps fetch: resends after 429/503 as Retry-After says, within the attempts and delay bounds. */
export function retrying (fetch: Fetch, { maxAttempts = 3, maxDelayMs = 10_000 }: RetryOptions = {}): Fetch {
  return async function fetchWithRetry (request) {
    for (let attempt = 1; ; attempt++) {
      // A clone per attempt: a body can be sent once, and the original stays unread for the next.
      const response = await fetch(request.clone())
      if (attempt >= maxAttempts || !mayRetry(request, response)) return response
      const delay = delayOf(response)
      if (delay > maxDelayMs) return response
      await response.body?.cancel()
      await sleep(delay, request.signal)
    }
  }
}

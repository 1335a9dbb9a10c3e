import { ApiError } from './errors.js'
import type { Fetch } from './retry.js'

export interface Tokens { accessToken: string, refreshToken: string }

export interface SessionOptions {
  /** Tokens saved from an earlier run. */
  tokens?: Tokens | null
  /** Called with every new pair (login, refresh) and with null when they are cleared, so the app can persist them. */
  onTokens?: (tokens: Tokens | null) => void
}

/** The token pair, held in memory, and the one refresh that every expired caller shares. */
export function createSession ({ tokens = null, onTokens }: SessionOptions, exchange: (refreshToken: string) => Promise<Tokens>) {
  let current = tokens
  let refreshing: Promise<void> | undefined

  function set (next: Tokens | null) {
    current = next && { accessToken: next.accessToken, refreshToken: next.refreshToken }
    onTokens?.(current)
  }

  async function rotate (refreshToken: string) {
    try {
      set(await exchange(refreshToken))
    } catch (err) {
      // The service refused the refresh token (spent, revoked, expired: 400/401): this login is
      // over. A 429, a 5xx or a network failure says nothing about the token: keep it.
      if (err instanceof ApiError && (err.status === 400 || err.status === 401)) set(null)
      throw err
    }
  }

  return {
    get tokens () { return current },
    set,
    /** Rotates the pair; callers arriving while a refresh runs wait for that one (a refresh token works once). */
    refresh (): Promise<void> {
      if (!current) return Promise.reject(new ApiError(401, 'UNAUTHORIZED', 'Not logged in'))
      refreshing ??= rotate(current.refreshToken).finally(() => { refreshing = undefined })
      return refreshing
    }
  }
}

export type Session = ReturnType<typeof createSession>

async function codeOf (response: Response): Promise<string | undefined> {
  try {
    const body = await response.clone().json() as { error?: { code?: string } } | null
    return body?.error?.code
  } catch {
    return undefined
  }
}

function send (fetch: Fetch, request: Request, accessToken: string) {
  const copy = request.clone()
  copy.headers.set('authorization', `Bearer ${accessToken}`)
  return fetch(copy)
}

/**
 * Wraps fetch: adds the access token and, when the service answers 401 TOKEN_EXPIRED, refreshes
 * once and sends the request again. A request that brings its own Authorization is left alone.
 */
export function authenticating (fetch: Fetch, session: Session): Fetch {
  return async function fetchWithAuth (request) {
    const sent = session.tokens?.accessToken
    if (sent === undefined || request.headers.has('authorization')) return fetch(request)
    const response = await send(fetch, request, sent)
    if (response.status !== 401 || await codeOf(response) !== 'TOKEN_EXPIRED') return response
    // Another caller may have refreshed since this request left: then its new token is used as is.
    if (session.tokens?.accessToken === sent) await session.refresh()
    const accessToken = session.tokens?.accessToken
    if (accessToken === undefined) return response
    await response.body?.cancel()
    return send(fetch, request, accessToken)
  }
}

import createFetchClient, { type Client } from 'openapi-fetch'
import { authenticating, createSession, type Tokens } from './auth.js'
import { ApiError, throwOnError } from './errors.js'
import { retrying, type Fetch, type RetryOptions } from './retry.js'
import { streamEvents, type Event, type EventStreamOptions } from './events.js'
import type { components, paths } from './schema.js'

export { ApiError, type ErrorCode, type ErrorDetail } from './errors.js'
export type { Tokens } from './auth.js'
export type { RetryOptions } from './retry.js'
export type { Event, EventStreamOptions } from './events.js'
export type { components, operations, paths } from './schema.js'

type Schemas = components['schemas']
export type User = Schemas['User']
export type AuditLogEntry = Schemas['AuditLogEntry']
export type TokenPair = Schemas['TokenPair']
/** A login whose password was right, awaiting its second factor: finish it with verifyMfa. */
export type MfaChallenge = Schemas['MfaChallenge']
export type LoginAnswer = TokenPair | MfaChallenge
export type SecondFactor = { code: string } | { recoveryCode: string }

export const isMfaChallenge = (answer: LoginAnswer): answer is MfaChallenge => 'mfaRequired' in answer && answer.mfaRequired

type QueryOf<Path extends keyof paths> = paths[Path] extends { get: { parameters: { query?: infer Q } } } ? NonNullable<Q> : never
// Partial: the document marks query parameters that have a default as required.
export type UserListQuery = Partial<Omit<QueryOf<'/api/v1/users'>, 'cursor' | 'page'>>
export type AuditLogQuery = Partial<Omit<QueryOf<'/api/v1/audit-logs'>, 'cursor'>>

export interface ClientOptions {
  /** The service's origin, e.g. https://users.example.com (paths start with /api/v1). */
  baseUrl: string
  /** Tokens saved from an earlier run (see onTokens). */
  tokens?: Tokens | null
  /** Called with every new pair (login, refresh) and with null when they are cleared or logged out. */
  onTokens?: (tokens: Tokens | null) => void
  /** Retries after 429/503 as Retry-After says; false turns them off. */
  retry?: RetryOptions | false
  /** The fetch to use (default: the global one). */
  fetch?: Fetch
}

export type UserManagementClient = Client<paths> & {
  /** The pair in use, or null when logged out. */
  readonly tokens: Tokens | null
  /**
   * Logs in and keeps the token pair; resolves with the service's answer (tokens and user). With a
   * second factor enrolled it resolves with the challenge instead (isMfaChallenge) and keeps nothing.
   */
  login (email: string, password: string): Promise<LoginAnswer>
  /** The second step of a login: the challenge's mfaToken with a TOTP or recovery code; keeps the pair. */
  verifyMfa (mfaToken: string, factor: SecondFactor): Promise<TokenPair>
  /** Ends this login on the service and forgets the tokens. */
  logout (): Promise<void>
  /** Every user that matches, following nextCursor page after page. */
  users (query?: UserListQuery): AsyncGenerator<Schemas['UserFields']>
  /** Every audit entry that matches, newest first, following nextCursor. */
  auditLogs (query?: AuditLogQuery): AsyncGenerator<AuditLogEntry>
  /** The live events the caller may see (GET /api/v1/events), resuming with Last-Event-ID after a dropped connection. */
  events (options?: EventStreamOptions): AsyncGenerator<Event>
}

interface Page<T> { data: T[], pagination: { nextCursor: string | null } }

async function * follow<T> (load: (cursor: string | undefined) => Promise<Page<T> | undefined>): AsyncGenerator<T> {
  let cursor: string | undefined
  do {
    const page = await load(cursor)
    if (!page) throw new ApiError(0, 'UNEXPECTED_RESPONSE', 'A list answered without a body')
    yield * page.data
    cursor = page.pagination.nextCursor ?? undefined
  } while (cursor !== undefined)
}

// Whole lists are walked in the largest pages the service allows, unless the caller sets a limit.
const PAGE = 100

export function createClient (options: ClientOptions): UserManagementClient {
  const base: Fetch = options.fetch ?? (request => fetch(request))
  const send = options.retry === false ? base : retrying(base, options.retry)

  // Login, refresh and logout go out without the access token and never trigger a refresh.
  const anonymous = createFetchClient<paths>({ baseUrl: options.baseUrl, fetch: send })
  anonymous.use(throwOnError)
  const session = createSession(options, async refreshToken => {
    const { data } = await anonymous.POST('/api/v1/auth/refresh', { body: { refreshToken } })
    return data!.data
  })
  const authenticated = authenticating(send, session)
  const client = createFetchClient<paths>({ baseUrl: options.baseUrl, fetch: authenticated })
  client.use(throwOnError)

  return {
    ...client,
    get tokens () { return session.tokens },
    async login (email: string, password: string) {
      const { data } = await anonymous.POST('/api/v1/auth/login', { body: { email, password } })
      const answer = data!.data
      if (!isMfaChallenge(answer)) session.set(answer)
      return answer
    },
    async verifyMfa (mfaToken: string, factor: SecondFactor) {
      const { data } = await anonymous.POST('/api/v1/auth/mfa/verify', { body: { mfaToken, ...factor } })
      session.set(data!.data)
      return data!.data
    },
    async logout () {
      const refreshToken = session.tokens?.refreshToken
      session.set(null)
      if (refreshToken) await anonymous.POST('/api/v1/auth/logout', { body: { refreshToken } })
    },
    users (query: UserListQuery = {}) {
      return follow(async cursor => (await client.GET('/api/v1/users', {
        params: { query: { limit: PAGE, ...query, cursor } as QueryOf<'/api/v1/users'> }
      })).data)
    },
    auditLogs (query: AuditLogQuery = {}) {
      return follow(async cursor => (await client.GET('/api/v1/audit-logs', {
        params: { query: { limit: PAGE, ...query, cursor } as QueryOf<'/api/v1/audit-logs'> }
      })).data)
    },
    events (eventOptions: EventStreamOptions = {}) {
      return streamEvents(authenticated, options.baseUrl, eventOptions)
    }
  }
}

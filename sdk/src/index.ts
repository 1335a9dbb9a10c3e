import createFetchClient, { type Client } from 'openapi-fetch'
import { authenticating, createSession, type Tokens } from './auth.js'
import { ApiError, throwOnError } from './errors.js'
import { retrying, type Fetch, type RetryOptions } from './retry.js'
import { streamEvents, type Event, type EventStreamOptions } from './events.js'
import type { components, paths } from './schema.js'

export { ApiError, type ErrorCode, type ErrorDetail } from './errors.js'
export type { Tokens } from './auth.js'
export type { RetryOptions } from './retry.js'
export { verifyWebhook, WebhookVerificationError, type VerifyWebhookOptions } from './webhooks.js'
export type { Event, EventStreamOptions } from './events.js'
export type { components, operations, paths } from './schema.js'

type Schemas = components['schemas']
export type User = Schemas['User']
export type AuditLogEntry = Schemas['AuditLogEntry']
/** A user's current consent to a purpose (GET /users/{id}/consents); the history is UserExport's consents. */
export type Consent = Schemas['Consent']
export type UserExport = Schemas['UserExport']
export type TokenPair = Schemas['TokenPair']
/** A login whose password was right, awaiting its second factor: finish it with verifyMfa. */
export type MfaChallenge = Schemas['MfaChallenge']
export type LoginAnswer = TokenPair | MfaChallenge
export type SecondFactor = { code: string } | { recoveryCode: string }

export const isMfaChallenge = (answer: LoginAnswer): answer is MfaChallenge => 'mfaRequired' in answer && answer.mfaRequired

type QueryOf<Path extends keyof paths> = paths[Path] extends { get: { parameters: { query?: infer Q } } } ? NonNullable<Q> : never
// Partial: the document marks query parameters that have a default as required.
/** The paths whose POST takes an Idempotency-Key (the document says so: its header parameter). */
export type IdempotentPath = {
  [P in keyof paths]: paths[P] extends { post: { parameters: { header?: infer H } } }
    // `header?: never` (no header parameter) would match any shape: it must be there and name the key.
    ? [NonNullable<H>] extends [never] ? never : 'Idempotency-Key' extends keyof NonNullable<H> ? P : never
    : never
}[keyof paths]

/** A new Idempotency-Key: a random UUID from Web Crypto (browsers, React Native with a crypto polyfill, Node). */
export const newIdempotencyKey = (): string => globalThis.crypto.randomUUID()

export type UserListQuery = Partial<Omit<QueryOf<'/api/v1/users'>, 'cursor' | 'page'>>
export type AuditLogQuery = Partial<Omit<QueryOf<'/api/v1/audit-logs'>, 'cursor'>>

type JsonBody<Operation> = Operation extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never
type JsonAnswer<Operation> = Operation extends { responses: { 200: { content: { 'application/json': { data: infer D } } } } } ? D : never
export type UserCreate = JsonBody<paths['/api/v1/users']['post']>
export type UserPatch = JsonBody<paths['/api/v1/users/{id}']['patch']>
/** One operation of a batch, with the body its single request takes. */
export type BatchOperation =
  | { op: 'create', body: UserCreate }
  | { op: 'update', id: string, body: UserPatch }
  | { op: 'delete', id: string }
  | { op: 'restore', id: string }
/** Each operation's answer, in order: the status its single request would have had, the user or the error. */
export type BatchResult = JsonAnswer<paths['/api/v1/users/batch']['post']>['results'][number]
export type ImportEntry = JsonBody<paths['/api/v1/users/import']['post']>['users'][number]
export type ImportResult = JsonAnswer<paths['/api/v1/users/import']['post']>

/** The most operations or users the service takes in one request. */
export const BULK_MAX = 1000

/** Consecutive slices of at most BULK_MAX items, with the index of each slice's first item. */
function * slices<T> (items: T[]): Generator<[T[], number]> {
  for (let start = 0; start < items.length; start += BULK_MAX) yield [items.slice(start, start + BULK_MAX), start]
}

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
  /**
   * client.POST for an operation that takes an Idempotency-Key, which it sends: init.idempotencyKey,
   * or a new random UUID. Every retry the client makes of this call (429, 503, 409
   * IDEMPOTENCY_IN_PROGRESS, a lost connection, a refreshed access token) resends the same key, so
   * the service does the work at most once. To retry it yourself later, pass the same idempotencyKey.
   */
  idempotentPost: Client<Pick<paths, IdempotentPath>>['POST']
  /** Every user that matches, following nextCursor page after page. */
  users (query?: UserListQuery): AsyncGenerator<Schemas['UserFields']>
  /** Every audit entry that matches, newest first, following nextCursor. */
  auditLogs (query?: AuditLogQuery): AsyncGenerator<AuditLogEntry>
  /**
   * POST /users/batch. Not atomic: any number of operations, sent BULK_MAX at a time, answered
   * in order (index is the position in `operations`). Atomic: at most BULK_MAX, all or nothing;
   * when any fails it throws the ApiError BATCH_FAILED, whose details name each failing operation.
   */
  batch (operations: BatchOperation[], options?: { atomic?: boolean }): Promise<BatchResult[]>
  /**
   * POST /users/import, BULK_MAX users per request (each request is its own transaction); the
   * counts are summed and each failed entry's index is its position in `users`.
   */
  importUsers (users: ImportEntry[], options?: { onConflict?: 'fail' | 'skip' | 'update' }): Promise<ImportResult>
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
    idempotentPost: ((url: IdempotentPath, init: { idempotencyKey?: string, params?: { header?: object } } = {}) => {
      const { idempotencyKey = newIdempotencyKey(), ...rest } = init
      const header = { ...rest.params?.header, 'Idempotency-Key': idempotencyKey }
      return client.POST(url, { ...rest, params: { ...rest.params, header } } as never)
    }) as UserManagementClient['idempotentPost'],
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
    async batch (operations: BatchOperation[], { atomic = false } = {}) {
      // One request when atomic, so that the service decides all or nothing (more than BULK_MAX is its 400).
      const parts: Array<[BatchOperation[], number]> = atomic ? [[operations, 0]] : [...slices(operations)]
      const results: BatchResult[] = []
      for (const [part, offset] of parts) {
        const { data } = await client.POST('/api/v1/users/batch', { body: { atomic, operations: part } })
        results.push(...data!.data.results.map(result => ({ ...result, index: result.index + offset })))
      }
      return results
    },
    async importUsers (users: ImportEntry[], { onConflict = 'fail' } = {}) {
      const total: ImportResult = { created: 0, updated: 0, skipped: 0, failed: [] }
      for (const [part, offset] of slices(users)) {
        const { data } = await client.POST('/api/v1/users/import', { body: { users: part, onConflict } })
        const answer = data!.data
        total.created += answer.created
        total.updated += answer.updated
        total.skipped += answer.skipped
        total.failed.push(...answer.failed.map(failure => ({ ...failure, index: failure.index + offset })))
      }
      return total
    },
    events (eventOptions: EventStreamOptions = {}) {
      return streamEvents(authenticated, options.baseUrl, eventOptions)
    }
  }
}

import type { Options, Request } from 'autocannon'
import { SEED_PASSWORD, seedEmail } from './database.js'
import { request } from './http.js'

/** service: the build under test; lean: bench/lean; peer: bench/peer; floor: bench/floor (same work as the service). */
export type ServerName = 'service' | 'lean' | 'peer' | 'floor'

export interface Target {
  name: ServerName
  url: string
  /** The database whose PostgreSQL backends serve this server (for CPU per request). */
  database: string
  /** This server's own admin (its own login): every server signs its own tokens. */
  adminToken: string
  /** Random ids of seeded users in this server's database, for get_user and patch. */
  userIds: string[]
  /** Keyset cursors this server handed out (list_users in cursor mode pages from them). */
  cursors: string[]
}

export interface BenchState {
  /** How many seeded users exist now (logins pick among them). */
  seeded: () => number
  runTag: string
}

export interface Scenario {
  name: string
  connections: number
  /** Servers that do not serve this scenario (the same-work floor has no PATCH). */
  skip?: ServerName[]
  /** The autocannon options for one run against one server (called before every run). */
  prepare (target: Target, state: BenchState): Promise<Partial<Options>>
}

// A new object every time: autocannon writes the body's Content-Length into the headers object it
// is given, and a stale length in a shared object corrupts every later request that uses it.
const json = () => ({ 'content-type': 'application/json' })
const pick = <T>(items: T[]) => items[Math.floor(Math.random() * items.length)]

/** The account the one-account login scenarios use; nothing else logs it in, so a lockout of it cannot spill over. */
export const ONE_ACCOUNT = 1
/** A random seeded account other than ONE_ACCOUNT. */
export const randomAccount = (state: BenchState) => seedEmail(ONE_ACCOUNT + 1 + Math.floor(Math.random() * (state.seeded() - ONE_ACCOUNT)))

/** Logs `count` random seeded users in on the target, for their refresh tokens (a few at a time: password hashing is slow). */
async function refreshTokens (target: Target, state: BenchState, count: number): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < count; i += 4) {
    const batch = Array.from({ length: Math.min(4, count - i) }, async () => {
      const res = await request(`${target.url}/api/v1/auth/login`, { method: 'POST', headers: json(), body: JSON.stringify({ email: randomAccount(state), password: SEED_PASSWORD }) })
      if (res.status !== 200) throw new Error(`login for a refresh token failed on ${target.name}: ${res.status} ${res.text}`)
      return (JSON.parse(res.text) as { data: { refreshToken: string } }).data.refreshToken
    })
    tokens.push(...await Promise.all(batch))
  }
  return tokens
}

/** The search scenario's queries for seeded user n: a plain word, each field, a phrase, a fuzzy typo (a swap), by relevance. */
const SEARCHES: Array<(n: number) => string> = [
  n => `q=Last${n}`,
  n => `q=${encodeURIComponent(`name:First${n}`)}`,
  n => `q=${encodeURIComponent(`email:bench-${n}@`)}`,
  n => `q=${encodeURIComponent(`"First${n} Last${n}"`)}`,
  n => `q=Lsat${n}&fuzzy=true`,
  n => `q=${encodeURIComponent(`first${n} last${n}`)}&sort=relevance`
]

let created = 0
let patched = 0

const loginOne = (connections: number): Scenario => ({
  name: `login_one_${connections}`,
  connections,
  async prepare () {
    return { method: 'POST', path: '/api/v1/auth/login', headers: json(), body: JSON.stringify({ email: seedEmail(ONE_ACCOUNT), password: SEED_PASSWORD }) }
  }
})

export const scenarios: Record<string, Scenario> = {
  get_user: {
    name: 'get_user',
    connections: 20,
    async prepare (target) {
      return {
        headers: { authorization: `Bearer ${target.adminToken}` },
        requests: [{ setupRequest: req => ({ ...req, path: `/api/v1/users/${pick(target.userIds)}` }) }]
      }
    }
  },
  // get_user asked for with br and gzip: its answer (about 500 bytes) is under the 1 KiB threshold,
  // so against get_user it shows what the compression hook costs an answer it leaves alone.
  get_user_br: {
    name: 'get_user_br',
    connections: 20,
    skip: ['lean', 'peer'],
    async prepare (target) {
      return {
        headers: { authorization: `Bearer ${target.adminToken}`, 'accept-encoding': 'br, gzip' },
        requests: [{ setupRequest: req => ({ ...req, path: `/api/v1/users/${pick(target.userIds)}` }) }]
      }
    }
  },
  list_users_page: {
    name: 'list_users_page',
    connections: 20,
    async prepare (target) {
      return { path: '/api/v1/users?limit=20', headers: { authorization: `Bearer ${target.adminToken}` } }
    }
  },
  // The same page (about 6 KiB of JSON) asked for with brotli: against list_users_page it prices
  // the compression (the lean floor and the peer do not compress, so they sit this one out).
  list_users_page_br: {
    name: 'list_users_page_br',
    connections: 20,
    skip: ['lean', 'peer'],
    async prepare (target) {
      return { path: '/api/v1/users?limit=20', headers: { authorization: `Bearer ${target.adminToken}`, 'accept-encoding': 'br' } }
    }
  },
  list_users_cursor: {
    name: 'list_users_cursor',
    connections: 20,
    async prepare (target) {
      return {
        headers: { authorization: `Bearer ${target.adminToken}` },
        requests: [{ setupRequest: req => ({ ...req, path: `/api/v1/users?limit=20&cursor=${pick(target.cursors)}` }) }]
      }
    }
  },
  login_many: {
    name: 'login_many',
    connections: 8,
    async prepare (_target, state) {
      return {
        method: 'POST',
        path: '/api/v1/auth/login',
        headers: json(),
        requests: [{ setupRequest: req => ({ ...req, body: JSON.stringify({ email: randomAccount(state), password: SEED_PASSWORD }) }) }]
      }
    }
  },
  create_user: {
    name: 'create_user',
    connections: 8,
    async prepare (target, state) {
      return {
        method: 'POST',
        path: '/api/v1/users',
        headers: { ...json(), authorization: `Bearer ${target.adminToken}` },
        requests: [{
          setupRequest: req => ({
            ...req,
            body: JSON.stringify({ email: `new-${state.runTag}-${target.name}-${++created}@example.test`, password: SEED_PASSWORD, firstName: 'New', lastName: 'User' })
          })
        }]
      }
    }
  },
  refresh: {
    name: 'refresh',
    connections: 16,
    // Every request spends a fresh token: each connection starts from its own login and
    // continues with the token the previous answer rotated to (the token chain of one login).
    async prepare (target, state) {
      const pool = await refreshTokens(target, state, scenarios.refresh.connections)
      return {
        method: 'POST',
        path: '/api/v1/auth/refresh',
        headers: json(),
        requests: [{
          setupRequest: req => ({ ...req, body: JSON.stringify({ refreshToken: pool.pop() ?? 'none-left' }) }),
          onResponse: (status, body) => {
            if (status === 200) pool.push((JSON.parse(body) as { data: { refreshToken: string } }).data.refreshToken)
          }
        }]
      }
    }
  },
  // About 70 % get, 20 % list (half page mode with its exact total, half keyset), 5 % patch,
  // 4 % refresh and 1 % login, drawn at random for every request.
  mixed: {
    name: 'mixed',
    connections: 20,
    skip: ['floor'],
    async prepare (target, state) {
      const pool = await refreshTokens(target, state, 8)
      const auth = { authorization: `Bearer ${target.adminToken}` }
      const write = () => ({ ...json(), authorization: `Bearer ${target.adminToken}` })
      const next = (req: Request, context: Record<string, unknown>): Request => {
        const r = Math.random()
        let kind = r < 0.70 ? 'get' : r < 0.80 ? 'page' : r < 0.90 ? 'cursor' : r < 0.95 ? 'patch' : r < 0.99 ? 'refresh' : 'login'
        if (kind === 'refresh' && pool.length === 0) kind = 'login'
        context.kind = kind
        switch (kind) {
          case 'get': return { ...req, method: 'GET', path: `/api/v1/users/${pick(target.userIds)}`, headers: { ...auth }, body: undefined }
          case 'page': return { ...req, method: 'GET', path: '/api/v1/users?limit=20', headers: { ...auth }, body: undefined }
          case 'cursor': return { ...req, method: 'GET', path: `/api/v1/users?limit=20&cursor=${pick(target.cursors)}`, headers: { ...auth }, body: undefined }
          case 'patch': return { ...req, method: 'PATCH', path: `/api/v1/users/${pick(target.userIds)}`, headers: write(), body: JSON.stringify({ firstName: `Mixed${++patched}` }) }
          case 'refresh': return { ...req, method: 'POST', path: '/api/v1/auth/refresh', headers: json(), body: JSON.stringify({ refreshToken: pool.pop() }) }
          default: return { ...req, method: 'POST', path: '/api/v1/auth/login', headers: json(), body: JSON.stringify({ email: randomAccount(state), password: SEED_PASSWORD }) }
        }
      }
      return {
        requests: [{
          setupRequest: next,
          onResponse: (status, body, context) => {
            if (status === 200 && (context.kind === 'refresh' || context.kind === 'login')) {
              pool.push((JSON.parse(body) as { data: { refreshToken: string } }).data.refreshToken)
            }
          }
        }]
      }
    }
  },
  // Advanced search (CONTRACT.md) in page mode with its exact total, as list_users_page: each request
  // one of the term kinds for a random seeded user among the last nine tenths (their numbers are not
  // a prefix of others', so a term matches about one user, as a search for a person does).
  search: {
    name: 'search',
    connections: 20,
    // Only the service implements search (the others would ignore q and answer a plain page).
    skip: ['lean', 'peer', 'floor'],
    async prepare (target, state) {
      const auth = { authorization: `Bearer ${target.adminToken}` }
      return {
        requests: [{
          setupRequest: req => {
            const seeded = state.seeded()
            const n = Math.floor(seeded / 10) + 1 + Math.floor(Math.random() * (seeded - Math.floor(seeded / 10)))
            return { ...req, method: 'GET', path: `/api/v1/users?limit=20&${pick(SEARCHES)(n)}`, headers: { ...auth }, body: undefined }
          }
        }]
      }
    }
  },
  // The lockout must count failures only: concurrent correct logins of one account all succeed
  // (CONTRACT.md, "Logins that load testers and many devices make").
  login_one_16: loginOne(16),
  login_one_50: loginOne(50)
}

/** The reads measured again at every size of the growth steps. */
export const GROWTH_SCENARIOS = ['get_user', 'list_users_page', 'list_users_cursor', 'search']

import type { Options } from 'autocannon'
import { SEED_PASSWORD, seedEmail } from './database.js'

export interface Target {
  name: 'service' | 'floor'
  url: string
  /** Keyset cursors this server handed out (list_users in cursor mode pages from them). */
  cursors: string[]
}

export interface BenchState {
  adminToken: string
  userIds: string[]
  /** How many seeded users exist now (login picks among them). */
  seeded: () => number
  runTag: string
}

export interface Scenario {
  name: string
  connections: number
  /** The autocannon options for one run against one server (called before every run). */
  prepare (target: Target, state: BenchState): Promise<Partial<Options>>
}

const json = { 'content-type': 'application/json' }
const pick = <T>(items: T[]) => items[Math.floor(Math.random() * items.length)]

/** Logs `count` random seeded users in on the target, for their refresh tokens (a few at a time: argon2 is slow). */
async function refreshTokens (target: Target, state: BenchState, count: number): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < count; i += 4) {
    const batch = Array.from({ length: Math.min(4, count - i) }, async () => {
      const res = await fetch(`${target.url}/api/v1/auth/login`, {
        method: 'POST', headers: json, body: JSON.stringify({ email: seedEmail(1 + Math.floor(Math.random() * state.seeded())), password: SEED_PASSWORD })
      })
      if (res.status !== 200) throw new Error(`login for a refresh token failed on ${target.name}: ${res.status} ${await res.text()}`)
      return ((await res.json()) as { data: { refreshToken: string } }).data.refreshToken
    })
    tokens.push(...await Promise.all(batch))
  }
  return tokens
}

let created = 0

export const scenarios: Record<string, Scenario> = {
  get_user: {
    name: 'get_user',
    connections: 20,
    async prepare (_target, state) {
      return {
        headers: { authorization: `Bearer ${state.adminToken}` },
        requests: [{ setupRequest: req => ({ ...req, path: `/api/v1/users/${pick(state.userIds)}` }) }]
      }
    }
  },
  list_users_page: {
    name: 'list_users_page',
    connections: 20,
    async prepare (_target, state) {
      return { path: '/api/v1/users?limit=20', headers: { authorization: `Bearer ${state.adminToken}` } }
    }
  },
  list_users_cursor: {
    name: 'list_users_cursor',
    connections: 20,
    async prepare (target, state) {
      return {
        headers: { authorization: `Bearer ${state.adminToken}` },
        requests: [{ setupRequest: req => ({ ...req, path: `/api/v1/users?limit=20&cursor=${pick(target.cursors)}` }) }]
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
        headers: { ...json, authorization: `Bearer ${state.adminToken}` },
        requests: [{
          setupRequest: req => ({
            ...req,
            body: JSON.stringify({ email: `new-${state.runTag}-${target.name}-${++created}@example.test`, password: SEED_PASSWORD, firstName: 'New', lastName: 'User' })
          })
        }]
      }
    }
  },
  login: {
    name: 'login',
    connections: 8,
    async prepare (_target, state) {
      return {
        method: 'POST',
        path: '/api/v1/auth/login',
        headers: json,
        requests: [{
          setupRequest: req => ({ ...req, body: JSON.stringify({ email: seedEmail(1 + Math.floor(Math.random() * state.seeded())), password: SEED_PASSWORD }) })
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
        headers: json,
        requests: [{
          setupRequest: req => ({ ...req, body: JSON.stringify({ refreshToken: pool.pop() ?? 'none-left' }) }),
          onResponse: (status, body) => {
            if (status === 200) pool.push((JSON.parse(body) as { data: { refreshToken: string } }).data.refreshToken)
          }
        }]
      }
    }
  }
}

// The floor: the same work as the service for the benchmarked routes, with no framework.
// node:http + pg (named prepared statements) + node:crypto JWT (HS256) + argon2 with the
// service's parameters. Same SQL, same round trips, same checks, same JSON; nothing else.
// It serves only what bench/run.ts asks for (it is a yardstick, not a second implementation).
import http from 'node:http'
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import argon2 from 'argon2'
import { Redis } from 'ioredis'
import pg from 'pg'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

const env = process.env
const seconds = (value, fallback) => value === undefined ? fallback : Number(value)
const config = {
  port: Number(env.PORT ?? 3001),
  host: env.HOST ?? '127.0.0.1',
  databaseUrl: env.DATABASE_URL,
  poolSize: Number(env.DB_POOL_SIZE ?? 8),
  jwtSecret: env.JWT_SECRET,
  jwtIssuer: env.JWT_ISSUER ?? 'user-management-api',
  jwtAudience: env.JWT_AUDIENCE ?? 'user-management-api',
  // The harness passes every duration as plain seconds.
  jwtExpirySec: seconds(env.JWT_EXPIRY, 900),
  refreshExpirySec: seconds(env.REFRESH_TOKEN_EXPIRY, 7 * 86400),
  rateLimitMax: Number(env.RATE_LIMIT_MAX ?? 1000),
  authRateLimitMax: Number(env.AUTH_RATE_LIMIT_MAX ?? 30),
  rateLimitWindowMs: seconds(env.RATE_LIMIT_WINDOW, 60) * 1000,
  loginMaxFailures: Number(env.LOGIN_MAX_FAILURES ?? 5),
  loginIpMaxFailures: Number(env.LOGIN_IP_MAX_FAILURES ?? 100),
  loginLockWindowMs: seconds(env.LOGIN_LOCK_WINDOW, 900) * 1000,
  redisUrl: env.REDIS_URL,
  redisKeyPrefix: `${env.REDIS_KEY_PREFIX ?? 'um:'}floor:`,
  bodyLimit: 102400
}
if (!config.databaseUrl || !config.jwtSecret) throw new Error('floor: DATABASE_URL and JWT_SECRET are required')

const ARGON2 = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 }
const dummyHash = argon2.hash('dummy-password-for-timing', ARGON2)

pg.types.setTypeParser(pg.types.builtins.INT8, value => Number(value))
const pool = new pg.Pool({
  connectionString: config.databaseUrl,
  max: config.poolSize,
  connectionTimeoutMillis: 5000,
  idleTimeoutMillis: 30_000,
  statement_timeout: 10_000,
  idle_in_transaction_session_timeout: 60_000,
  application_name: 'bench-floor'
})

// ---- SQL: the statements the service's repositories compile to ----------------------------
const USER_COLUMNS = `u.id, u.email, u.first_name, u.last_name, u.status, u.email_verified, u.last_login_at,
  u.created_at, u.updated_at, u.deleted_at, p.user_id as profile_user_id, p.bio, p.avatar_url, p.phone, p.locale, p.timezone,
  array(select r.name from user_roles ur join roles r on r.id = ur.role_id where ur.user_id = u.id order by r.name) as roles
  from users as u left join user_profiles as p on p.user_id = u.id`
const SQL = {
  authState: `select u.status, u.deleted_at,
    array(select distinct p from user_roles ur join roles r on r.id = ur.role_id, unnest(r.permissions) p where ur.user_id = u.id) as permissions,
    exists(select 1 from user_sessions s where s.id = $1 and s.user_id = u.id and s.revoked_at is null and s.expires_at > now()) as session_active
    from users as u where u.id = $2 and u.erased_at is null`,
  userById: `select ${USER_COLUMNS} where u.id = $1 and u.erased_at is null and u.deleted_at is null`,
  listPage: `select ${USER_COLUMNS} where u.erased_at is null and u.deleted_at is null
    order by u.created_at asc, u.id asc limit $1 offset $2`,
  listAfter: `select ${USER_COLUMNS} where u.erased_at is null and u.deleted_at is null and (u.created_at, u.id) > ($1, $2)
    order by u.created_at asc, u.id asc limit $3 offset 0`,
  listCount: 'select count(*)::int as total from users as u where u.erased_at is null and u.deleted_at is null',
  rolesByName: 'select id, name, permissions from roles where name = any($1::text[])',
  insertUser: 'insert into users (email, password_hash, first_name, last_name, status) values ($1, $2, $3, $4, $5) returning id',
  deleteUserRoles: 'delete from user_roles where user_id = $1',
  insertUserRole: 'insert into user_roles (user_id, role_id) select $1, unnest($2::uuid[])',
  insertVerification: 'insert into email_verification_tokens (user_id, email, token_hash, expires_at) values ($1, $2, $3, $4)',
  insertOutbox: 'insert into email_outbox (to_address, template, payload) values ($1, $2, $3)',
  insertAudit: 'insert into user_audit_log (action, user_id, actor_id, changes, ip, user_agent, request_id) values ($1, $2, $3, $4, $5, $6, $7)',
  credentials: `select id, email, password_hash, status, email_verified from users
    where lower(email) = $1 and deleted_at is null`,
  touchLogin: 'update users set last_login_at = now() where id = $1',
  insertSession: 'insert into user_sessions (user_id, user_agent, ip, expires_at) values ($1, $2, $3, $4) returning id',
  insertRefresh: 'insert into refresh_tokens (session_id, user_id, token_hash, expires_at) values ($1, $2, $3, $4)',
  // Spend, touch the session and store the successor in one statement, as the service does.
  rotateRefresh: `with spent as (
      update refresh_tokens rt set spent_at = now() from user_sessions s, users u
      where rt.token_hash = $1 and rt.spent_at is null and rt.expires_at > now()
        and s.id = rt.session_id and s.revoked_at is null and s.expires_at > now()
        and u.id = rt.user_id and u.deleted_at is null and u.erased_at is null and u.status <> 'suspended'
      returning rt.session_id, rt.user_id, s.expires_at
    ), touched as (
      update user_sessions set last_used_at = now() where id = (select session_id from spent)
    ), successor as (
      insert into refresh_tokens (session_id, user_id, token_hash, expires_at)
      select session_id, user_id, $2, expires_at from spent
    )
    select session_id, user_id, expires_at from spent`,
  findRefresh: `select rt.session_id, rt.user_id, rt.spent_at, s.revoked_at is null and s.expires_at > now() as session_active
    from refresh_tokens as rt join user_sessions as s on s.id = rt.session_id where rt.token_hash = $1`,
  revokeSession: 'update user_sessions set revoked_at = now() where id = $1 and revoked_at is null'
}
// FLOOR_PREPARED=0 sends every statement unnamed, as Kysely does (for measuring what naming them saves).
const query = env.FLOOR_PREPARED === '0'
  ? (ex, name, values) => ex.query(SQL[name], values)
  : (ex, name, values) => ex.query({ name, text: SQL[name], values })

async function transaction (work) {
  const client = await pool.connect()
  try {
    await client.query('begin')
    const result = await work(client)
    await client.query('commit')
    return result
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

// ---- errors and replies ------------------------------------------------------------------
class HttpError extends Error {
  constructor (status, code, message, details, headers) {
    super(message)
    Object.assign(this, { status, code, details, headers })
  }
}
const validation = (message, details) => new HttpError(400, 'VALIDATION_ERROR', message, details)
const unauthorized = (message = 'Authentication required') => new HttpError(401, 'UNAUTHORIZED', message)
const invalidCredentials = () => new HttpError(401, 'INVALID_CREDENTIALS', 'Invalid email or password')
const forbidden = (message = 'You do not have permission to do this') => new HttpError(403, 'FORBIDDEN', message)
const notFound = (what = 'Resource') => new HttpError(404, 'NOT_FOUND', `${what} not found`)

function send (res, status, body, headers = {}) {
  const payload = body === null ? '' : JSON.stringify(body)
  if (body !== null) headers['content-type'] = 'application/json; charset=utf-8'
  headers['content-length'] = Buffer.byteLength(payload)
  res.writeHead(status, headers)
  res.end(payload)
}

function sendError (res, err, requestId, headers) {
  if (!(err instanceof HttpError)) {
    if (err?.code === '23505' && /users_email_live_key/.test(`${err.constraint} ${err.message}`)) {
      err = new HttpError(409, 'EMAIL_TAKEN', 'A user with this email already exists', [{ field: 'email', message: 'is already taken' }])
    } else if (err?.code === '22P02') {
      err = validation('A value is out of range or malformed')
    } else {
      console.error(err)
      err = new HttpError(500, 'INTERNAL_ERROR', 'An unexpected error occurred')
    }
  }
  Object.assign(headers, err.headers)
  send(res, err.status, {
    success: false,
    error: { code: err.code, message: err.message, ...(err.details?.length ? { details: err.details } : {}), requestId }
  }, headers)
}

// ---- fixed-window counters (rate limits, login lockout), in process or in Redis like the service ----
const memoryWindows = new Map()
const memoryCounter = {
  async hit (key, windowMs, by = 1) {
    const now = Date.now()
    let entry = memoryWindows.get(key)
    if (!entry || entry.endsAt <= now) {
      memoryWindows.delete(key)
      if (by <= 0) return { count: 0, ttlMs: 0 }
      entry = { count: 0, endsAt: now + windowMs }
      memoryWindows.set(key, entry)
      if (memoryWindows.size > 100_000) memoryWindows.delete(memoryWindows.keys().next().value)
    }
    entry.count += by
    if (entry.count <= 0) {
      memoryWindows.delete(key)
      return { count: 0, ttlMs: 0 }
    }
    return { count: entry.count, ttlMs: entry.endsAt - now }
  },
  async reset (key) { memoryWindows.delete(key) }
}
function redisCounter (url) {
  const redis = new Redis(url, { keyPrefix: config.redisKeyPrefix, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  redis.defineCommand('windowHit', {
    numberOfKeys: 1,
    lua: `local n = redis.call('INCRBY', KEYS[1], ARGV[2])
      if n <= 0 then redis.call('DEL', KEYS[1]) return {0, 0} end
      local ttl = redis.call('PTTL', KEYS[1])
      if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end
      return {n, ttl}`
  })
  return {
    redis,
    async hit (key, windowMs, by = 1) {
      const [count, ttlMs] = await redis.windowHit(key, windowMs, by)
      return { count, ttlMs }
    },
    async reset (key) { await redis.del(key) }
  }
}
const counter = config.redisUrl ? redisCounter(config.redisUrl) : memoryCounter

async function rateLimit (key, max, headers) {
  const { count, ttlMs } = await counter.hit(key, config.rateLimitWindowMs)
  const resetSec = Math.ceil(ttlMs / 1000)
  headers['x-ratelimit-limit'] = max
  headers['x-ratelimit-remaining'] = Math.max(0, max - count)
  headers['x-ratelimit-reset'] = resetSec
  if (count > max) {
    throw new HttpError(429, 'RATE_LIMITED', 'Too many requests, try again later', undefined, { 'retry-after': String(Math.max(1, resetSec)) })
  }
}

// Login lockout as CONTRACT.md now says ("Logins that load testers and many devices make"): only
// failures count, so concurrent correct logins of one account never lock it; a success resets the
// account's count. (The service counted every attempt up front until issue 12; this floor follows
// the contract, not that.)
const accountKey = email => `login:account:${createHash('sha256').update(email).digest('base64url')}`
async function assertLoginAllowed (email, ip) {
  const [account, client] = await Promise.all([
    counter.hit(accountKey(email), config.loginLockWindowMs, 0),
    ip ? counter.hit(`login:ip:${ip}`, config.loginLockWindowMs, 0) : undefined
  ])
  if (account.count >= config.loginMaxFailures) throw new HttpError(429, 'RATE_LIMITED', 'Too many failed logins for this account; try again later')
  if (client && client.count >= config.loginIpMaxFailures) throw new HttpError(429, 'RATE_LIMITED', 'Too many failed logins from this address; try again later')
}
async function recordLoginFailure (email, ip) {
  await Promise.all([counter.hit(accountKey(email), config.loginLockWindowMs), ip ? counter.hit(`login:ip:${ip}`, config.loginLockWindowMs) : undefined])
}
async function recordLoginSuccess (email) {
  await counter.reset(accountKey(email))
}

// ---- metrics: the same request-duration histogram as src/plugins/app/metrics.ts ------------
const registry = new Registry()
collectDefaultMetrics({ register: registry })
const duration = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP request duration in seconds, by route template, method and status code',
  labelNames: ['route', 'method', 'status_code'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry]
})

// ---- tokens ------------------------------------------------------------------------------
const CLAIM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const isUuid = value => typeof value === 'string' && CLAIM_ID.test(value)
const b64url = value => Buffer.from(value).toString('base64url')
const JWT_HEADER = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
const hmac = data => createHmac('sha256', config.jwtSecret).update(data).digest()

function signAccessToken (claims) {
  const iat = Math.floor(Date.now() / 1000)
  const payload = b64url(JSON.stringify({ ...claims, iat, exp: iat + config.jwtExpirySec, iss: config.jwtIssuer, aud: config.jwtAudience }))
  return `${JWT_HEADER}.${payload}.${hmac(`${JWT_HEADER}.${payload}`).toString('base64url')}`
}

/** HS256 only, signature first, then exp / iss / aud and the required claims (what fast-jwt checks for the service). */
function verifyAccessToken (authorization) {
  const invalid = () => unauthorized('The access token is missing or invalid')
  if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) throw invalid()
  const parts = authorization.slice(7).split('.')
  if (parts.length !== 3) throw invalid()
  let header, claims
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString())
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString())
  } catch { throw invalid() }
  if (header?.alg !== 'HS256') throw invalid()
  const expected = hmac(`${parts[0]}.${parts[1]}`)
  const given = Buffer.from(parts[2], 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid()
  for (const claim of ['sub', 'sid', 'exp', 'iat', 'iss', 'aud']) if (claims[claim] === undefined) throw invalid()
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) throw new HttpError(401, 'TOKEN_EXPIRED', 'The access token has expired')
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (claims.iss !== config.jwtIssuer || !audience.includes(config.jwtAudience)) throw invalid()
  if (claims.typ !== 'access' || !isUuid(claims.sub) || !isUuid(claims.sid)) throw invalid()
  return claims
}

// The service's auth-state cache (src/lib/auth-state-cache.ts): per user and session, dropped on
// the database's auth_state_changed notifications and by this server's own writes. FLOOR_AUTH_CACHE=0
// turns it off (the harness does that when the service has no such cache).
const AUTH_STATE_TTL_MS = 60_000
const authStates = {
  users: new Map(),
  generation: 0,
  enabled: false,
  size: 0,
  async get (userId, sessionId, load) {
    const now = Date.now()
    const hit = this.users.get(userId)?.get(sessionId)
    if (hit && hit.expiresAt > now) return hit.value
    const generation = this.generation
    const value = await load()
    if (this.enabled && generation === this.generation) {
      if (this.size >= 100_000) this.clear()
      let sessions = this.users.get(userId)
      if (!sessions) this.users.set(userId, sessions = new Map())
      if (!sessions.has(sessionId)) this.size++
      sessions.set(sessionId, { value, expiresAt: now + AUTH_STATE_TTL_MS })
    }
    return value
  },
  clearUser (userId) {
    this.generation++
    const sessions = this.users.get(userId)
    if (sessions) {
      this.size -= sessions.size
      this.users.delete(userId)
    }
  },
  clear () {
    this.generation++
    this.users.clear()
    this.size = 0
  }
}
if (env.FLOOR_AUTH_CACHE !== '0') {
  const listener = new pg.Client({ connectionString: config.databaseUrl, application_name: 'bench-floor:listen' })
  listener.on('notification', ({ payload }) => payload === '*' ? authStates.clear() : authStates.clearUser(payload))
  await listener.connect()
  await listener.query('LISTEN auth_state_changed')
  authStates.enabled = true
}
// Successful writes that cannot invalidate anyone's access token (as src/plugins/app/auth.ts).
const KEEPS_AUTH_STATE = new Set(['POST /api/v1/users/', 'POST /api/v1/auth/login', 'POST /api/v1/auth/register', 'POST /api/v1/auth/refresh'])

async function authenticate (req) {
  const claims = verifyAccessToken(req.headers.authorization)
  const state = await authStates.get(claims.sub, claims.sid, async () => (await query(pool, 'authState', [claims.sid, claims.sub])).rows[0])
  if (!state || state.deleted_at !== null || state.status === 'suspended' || !state.session_active) {
    throw unauthorized('The access token is no longer valid')
  }
  return { id: claims.sub, sessionId: claims.sid, permissions: new Set(state.permissions) }
}

const randomToken = () => randomBytes(32).toString('base64url')
const hashToken = token => createHash('sha256').update(token).digest('base64url')

// ---- users -------------------------------------------------------------------------------
const iso = date => date === null ? null : date.toISOString()
const toUser = row => ({
  id: row.id,
  email: row.email,
  firstName: row.first_name,
  lastName: row.last_name,
  status: row.status,
  emailVerified: row.email_verified,
  roles: row.roles,
  profile: row.profile_user_id ? { bio: row.bio, avatarUrl: row.avatar_url, phone: row.phone, locale: row.locale, timezone: row.timezone } : null,
  lastLoginAt: iso(row.last_login_at),
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
  deletedAt: iso(row.deleted_at)
})
const etagOf = user => `"${createHash('sha1').update(JSON.stringify(user)).digest('base64url')}"`

async function loadUser (ex, id) {
  const { rows: [row] } = await query(ex, 'userById', [id])
  if (!row) throw notFound('User')
  return toUser(row)
}

async function audit (ex, ctx, action, userId, changes) {
  await query(ex, 'insertAudit', [action, userId, ctx.actorId, changes ? JSON.stringify(changes) : null, ctx.ip, ctx.userAgent?.slice(0, 512) ?? null, ctx.requestId])
}

const UUID = /^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/i
const CURSOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// ajv-formats' "email" (full mode)
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i
const STATUSES = ['active', 'suspended', 'pending']

function authorize (actor, permission, selfId) {
  if (actor.permissions.has(permission)) return
  if (selfId !== undefined && selfId === actor.id) return
  throw forbidden()
}

async function getUser (req, res, ctx, id) {
  const actor = await authenticate(req)
  if (!UUID.test(id)) throw validation('The request is invalid', [{ field: 'id', message: 'must match format "uuid"' }])
  authorize(actor, 'users:read', id)
  const user = await loadUser(pool, id)
  const etag = etagOf(user)
  ctx.headers.etag = etag
  ctx.headers['cache-control'] = 'private, no-cache'
  const ifNoneMatch = req.headers['if-none-match']
  if (ifNoneMatch && ifNoneMatch.split(',').some(t => [etag, `W/${etag}`, '*'].includes(t.trim()))) return send(res, 304, null, ctx.headers)
  send(res, 200, { success: true, data: user }, ctx.headers)
}

function integer (params, name, min, max, fallback) {
  const raw = params.get(name)
  if (raw === null) return fallback
  const value = Number(raw)
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw validation('The request is invalid', [{ field: name, message: `must be an integer from ${min} to ${max}` }])
  }
  return value
}

async function listUsers (req, res, ctx, params) {
  const actor = await authenticate(req)
  const page = integer(params, 'page', 1, 1_000_000, 1)
  const limit = integer(params, 'limit', 1, 100, 20)
  const sort = params.get('sort') ?? 'createdAt'
  if (sort !== 'createdAt') throw validation('The floor lists by createdAt only', [{ field: 'sort', message: 'unsupported by the floor' }])
  const cursor = params.get('cursor')
  authorize(actor, 'users:read')
  // The same fingerprint as the service: sort and filters (none here), so cursors are interchangeable.
  const fingerprint = createHash('sha256').update(JSON.stringify([sort, null, null, null, null, null, null, false])).digest('base64url').slice(0, 16)

  let rowsPromise
  if (cursor !== null) {
    let parsed
    try { parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) } catch { parsed = null }
    if (!Array.isArray(parsed) || parsed.length !== 3 || typeof parsed[1] !== 'string' || typeof parsed[2] !== 'string' || !CURSOR_ID.test(parsed[2])) {
      throw validation('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
    }
    if (parsed[0] !== fingerprint) throw validation('The cursor belongs to a different sort or filter', [{ field: 'cursor', message: 'does not match the sort and filters' }])
    const after = new Date(parsed[1])
    if (Number.isNaN(after.getTime())) throw validation('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
    rowsPromise = query(pool, 'listAfter', [after, parsed[2], limit + 1])
  } else {
    rowsPromise = query(pool, 'listPage', [limit + 1, (page - 1) * limit])
  }
  const [{ rows }, total] = await Promise.all([
    rowsPromise,
    cursor !== null ? null : query(pool, 'listCount', []).then(r => r.rows[0].total)
  ])
  const hasNext = rows.length > limit
  const data = rows.slice(0, limit).map(toUser)
  const last = data[data.length - 1]
  const nextCursor = hasNext && last ? Buffer.from(JSON.stringify([fingerprint, last.createdAt, last.id])).toString('base64url') : null
  send(res, 200, {
    success: true,
    data,
    pagination: { page: cursor !== null ? null : page, limit, total, totalPages: total === null ? null : Math.ceil(total / limit), hasNext, nextCursor }
  }, ctx.headers)
}

// Body checks mirror UserCreateSchema / LoginSchema (ajv, allErrors) closely enough for valid input and common faults.
function checkBody (body, shape) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw validation('The request is invalid', [{ message: 'body must be object' }])
  const details = []
  for (const key of Object.keys(body)) if (!(key in shape)) details.push({ field: key, message: 'is not allowed' })
  for (const [key, check] of Object.entries(shape)) {
    const problem = check(body[key])
    if (problem) details.push({ field: key, message: problem })
  }
  if (details.length > 0) throw validation('The request is invalid', details)
}
const text = (min, max, pattern, optional = false) => value => {
  if (value === undefined) return optional ? undefined : 'is required'
  if (typeof value !== 'string') return 'must be string'
  if (value.length < min || value.length > max) return `must be ${min} to ${max} characters`
  if (pattern && !pattern.test(value)) return 'is invalid'
}
const USER_CREATE = {
  email: text(3, 254, EMAIL),
  password: text(1, 1024),
  firstName: text(1, 100, /\S/),
  lastName: text(1, 100, /\S/),
  roles: value => value === undefined || (Array.isArray(value) && value.length <= 20 && value.every(r => typeof r === 'string' && r.length >= 1 && r.length <= 50) && new Set(value).size === value.length) ? undefined : 'is invalid',
  status: value => value === undefined || STATUSES.includes(value) ? undefined : 'is invalid',
  profile: value => value === undefined || value === null ? undefined : 'profiles are not supported by the floor'
}
const LOGIN = { email: text(1, 254), password: text(1, 1024) }
const REFRESH = { refreshToken: text(1, 1024) }

function passwordProblems (password, email) {
  const problems = []
  if (password.length < 8 || password.length > 128) problems.push('must be 8 to 128 characters long')
  if (!/[a-z]/.test(password)) problems.push('must contain a lower-case letter')
  if (!/[A-Z]/.test(password)) problems.push('must contain an upper-case letter')
  if (!/[0-9]/.test(password)) problems.push('must contain a digit')
  if (email && password.toLowerCase() === email.toLowerCase()) problems.push('must not be the email address')
  return problems.map(message => ({ field: 'password', message }))
}

async function createUser (req, res, ctx, body) {
  const actor = await authenticate(req)
  checkBody(body, USER_CREATE)
  authorize(actor, 'users:write')
  if ((body.roles !== undefined || body.status !== undefined) && !actor.permissions.has('roles:manage')) {
    throw forbidden('Only a caller with roles:manage may set roles or status')
  }
  ctx.actorId = actor.id
  const email = body.email.toLowerCase()
  const problems = passwordProblems(body.password, email)
  if (problems.length > 0) throw validation('The password does not meet the policy', problems)
  const passwordHash = await argon2.hash(body.password, ARGON2)
  const user = await transaction(async client => {
    const names = body.roles ?? ['user']
    const { rows: roles } = await query(client, 'rolesByName', [names])
    const unknown = names.filter(n => !roles.some(r => r.name === n))
    if (unknown.length > 0) throw validation('Unknown role', unknown.map(n => ({ field: 'roles', message: `unknown role "${n}"` })))
    const { rows: [{ id }] } = await query(client, 'insertUser', [email, passwordHash, body.firstName, body.lastName, body.status ?? 'active'])
    await query(client, 'deleteUserRoles', [id])
    await query(client, 'insertUserRole', [id, roles.map(r => r.id)])
    const token = randomToken()
    await query(client, 'insertVerification', [id, email, hashToken(token), new Date(Date.now() + 24 * 3600_000)])
    await query(client, 'insertOutbox', [email, 'verify_email', JSON.stringify({ token, userId: id })])
    const user = await loadUser(client, id)
    await audit(client, ctx, 'user.created', id, { email: user.email, firstName: user.firstName, lastName: user.lastName, status: user.status, roles: user.roles })
    return user
  })
  ctx.headers.location = `/api/v1/users/${user.id}`
  ctx.headers.etag = etagOf(user)
  send(res, 201, { success: true, data: user }, ctx.headers)
}

async function issueForSession (client, userId, sessionId, expiresAt) {
  const refreshToken = randomToken()
  await query(client, 'insertRefresh', [sessionId, userId, hashToken(refreshToken), expiresAt])
  const { rows: [row] } = await query(client, 'userById', [userId])
  if (!row) throw unauthorized('The refresh token is invalid or expired')
  return { accessToken: signAccessToken({ sub: userId, sid: sessionId, typ: 'access' }), refreshToken, tokenType: 'Bearer', expiresIn: Math.round(config.jwtExpirySec), user: toUser(row) }
}

async function issueTokens (client, ctx, userId) {
  const expiresAt = new Date(Date.now() + config.refreshExpirySec * 1000)
  const { rows: [{ id: sessionId }] } = await query(client, 'insertSession', [userId, ctx.userAgent?.slice(0, 512) ?? null, ctx.ip, expiresAt])
  return issueForSession(client, userId, sessionId, expiresAt)
}

async function login (req, res, ctx, body) {
  checkBody(body, LOGIN)
  const email = body.email.trim().toLowerCase()
  await assertLoginAllowed(email, ctx.ip)
  const { rows: [account] } = await query(pool, 'credentials', [email])
  if (!account) {
    await argon2.verify(await dummyHash, body.password).catch(() => false)
    await audit(pool, ctx, 'auth.login_failed', null, { reason: 'unknown_account' })
    await recordLoginFailure(email, ctx.ip)
    throw invalidCredentials()
  }
  const valid = await argon2.verify(account.password_hash, body.password).catch(() => false)
  if (!valid || account.status === 'suspended') {
    await audit(pool, ctx, 'auth.login_failed', account.id, { reason: valid ? 'suspended' : 'wrong_password' })
    await recordLoginFailure(email, ctx.ip)
    throw invalidCredentials()
  }
  const pair = await transaction(async client => {
    await query(client, 'touchLogin', [account.id])
    const pair = await issueTokens(client, ctx, account.id)
    await audit(client, { ...ctx, actorId: account.id }, 'auth.login', account.id)
    return pair
  })
  await recordLoginSuccess(email)
  send(res, 200, { success: true, data: pair }, ctx.headers)
}

async function refresh (req, res, ctx, body) {
  checkBody(body, REFRESH)
  const tokenHash = hashToken(body.refreshToken)
  const successor = randomToken()
  const { rows: [rotated] } = await query(pool, 'rotateRefresh', [tokenHash, hashToken(successor)])
  if (!rotated) {
    // Not rotated: unknown or expired (401), or a spent token come back (revoke its login, TOKEN_REUSED).
    const { rows: [token] } = await query(pool, 'findRefresh', [tokenHash])
    if (!token || token.spent_at === null) throw unauthorized('The refresh token is invalid or expired')
    await transaction(async client => {
      const { rowCount } = await query(client, 'revokeSession', [token.session_id])
      await audit(client, ctx, 'auth.token_reused', token.user_id, { sessionId: token.session_id, sessionRevoked: rowCount > 0 })
    })
    throw new HttpError(401, 'TOKEN_REUSED', 'The refresh token was already used; every token of this login is revoked')
  }
  const { rows: [row] } = await query(pool, 'userById', [rotated.user_id])
  if (!row) throw unauthorized('The refresh token is invalid or expired')
  const pair = { accessToken: signAccessToken({ sub: rotated.user_id, sid: rotated.session_id, typ: 'access' }), refreshToken: successor, tokenType: 'Bearer', expiresIn: Math.round(config.jwtExpirySec), user: toUser(row) }
  send(res, 200, { success: true, data: pair }, ctx.headers)
}

// ---- HTTP --------------------------------------------------------------------------------
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const USER_PATH = /^\/api\/v1\/users\/([^/]+)\/?$/
const AUTH_LIMITED = new Set(['/api/v1/auth/login', '/api/v1/auth/refresh'])

function readJson (req) {
  return new Promise((resolve, reject) => {
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      return reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported content type; send application/json'))
    }
    const chunks = []
    let size = 0
    req.on('data', chunk => {
      size += chunk.length
      if (size > config.bodyLimit) reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', 'Request body is too large'))
      else chunks.push(chunk)
    })
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))) } catch { reject(validation('Body is not valid JSON')) }
    })
    req.on('error', reject)
  })
}

// @fastify/helmet's answer headers as src/plugins/external/helmet.ts configures them.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'DENY',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0'
}

/** The route template (for metrics and the limit bucket) and its handler. */
function route (method, path) {
  if (path === '/api/v1/users' || path === '/api/v1/users/') {
    if (method === 'GET') return ['/api/v1/users/', (req, res, ctx, search) => listUsers(req, res, ctx, new URLSearchParams(search))]
    if (method === 'POST') return ['/api/v1/users/', async (req, res, ctx) => createUser(req, res, ctx, await readJson(req))]
  } else if (method === 'GET' && USER_PATH.test(path)) {
    return ['/api/v1/users/:id', (req, res, ctx) => getUser(req, res, ctx, USER_PATH.exec(path)[1])]
  } else if (method === 'POST' && path === '/api/v1/auth/login') {
    return ['/api/v1/auth/login', async (req, res, ctx) => login(req, res, ctx, await readJson(req))]
  } else if (method === 'POST' && path === '/api/v1/auth/refresh') {
    return ['/api/v1/auth/refresh', async (req, res, ctx) => refresh(req, res, ctx, await readJson(req))]
  } else if (method === 'GET' && path === '/metrics') {
    return ['/metrics', async (req, res, ctx) => {
      const text = await registry.metrics()
      res.writeHead(200, { ...ctx.headers, 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }]
  } else if (method === 'GET' && path === '/health') {
    return ['/health', (req, res, ctx) => send(res, 200, { success: true, data: { status: 'ok' } }, ctx.headers)]
  }
  return [undefined, () => { throw new HttpError(404, 'NOT_FOUND', `Route ${method} ${path} not found`) }]
}

async function handle (req, res) {
  const started = process.hrtime.bigint()
  const sentId = req.headers['x-request-id']
  const requestId = typeof sentId === 'string' && REQUEST_ID.test(sentId) ? sentId : randomUUID()
  const headers = { ...SECURITY_HEADERS, 'x-request-id': requestId }
  const ctx = { headers, actorId: null, ip: req.socket.remoteAddress ?? null, userAgent: req.headers['user-agent'] ?? null, requestId }
  const [path, search = ''] = req.url.split('?', 2)
  const [template, handler] = route(req.method, path)
  res.once('finish', () => {
    if (req.method !== 'GET' && req.method !== 'HEAD' && !(res.statusCode < 400 && KEEPS_AUTH_STATE.has(`${req.method} ${template}`))) authStates.clear()
    duration.observe({ route: template ?? 'unmatched', method: req.method, status_code: String(res.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9)
  })
  try {
    if (path.startsWith('/api/v1/')) {
      if (req.method === 'POST' && AUTH_LIMITED.has(template)) await rateLimit(`rl:auth:${template}:${ctx.ip}`, config.authRateLimitMax, headers)
      else await rateLimit(`rl:api:${ctx.ip}`, config.rateLimitMax, headers)
    }
    // Token-bearing answers must never be stored (every auth route, errors included).
    if (path.startsWith('/api/v1/auth/')) headers['cache-control'] = 'no-store'
    await handler(req, res, ctx, search)
  } catch (err) {
    sendError(res, err, requestId, headers)
  }
}

const server = http.createServer((req, res) => { handle(req, res) })
server.keepAliveTimeout = 72_000
server.headersTimeout = 75_000
server.requestTimeout = 30_000
server.listen(config.port, config.host)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    Promise.allSettled([pool.end(), counter.redis?.quit()]).finally(() => process.exit(0))
  })
}

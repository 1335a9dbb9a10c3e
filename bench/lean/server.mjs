// The lean floor: the benchmarked slice of the contract as a competitor who only cares about speed
// would write it. Its own schema (bench/lean/schema.sql: one denormalized `users` table with
// `roles text[]` and `profile jsonb`, plus sessions, refresh tokens and the email outbox), plain
// node:http, pg with named prepared statements (rows as arrays), HS256 JWT on node:crypto, and
// argon2id with the service's parameters. One SQL round trip per request wherever one statement
// can do the work. It does what a client can observe (envelopes, status codes, ETags, revocation
// of access tokens, token rotation and reuse detection, the verification email) and skips what
// it cannot (audit rows, lockouts, rate limiting, metrics).
//
// Routes: GET /health, GET /api/v1/users (page mode with exact total, keyset cursor mode),
// GET|PATCH /api/v1/users/:id, POST /api/v1/users, POST /api/v1/auth/login, POST /api/v1/auth/refresh.
import http from 'node:http'
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import argon2 from 'argon2'
import pg from 'pg'

const env = process.env
const config = {
  port: Number(env.PORT ?? 3002),
  host: env.HOST ?? '127.0.0.1',
  databaseUrl: env.DATABASE_URL,
  poolSize: Number(env.DB_POOL_SIZE ?? 8),
  jwtSecret: env.JWT_SECRET,
  jwtExpirySec: Number(env.JWT_EXPIRY ?? 900),
  refreshExpirySec: Number(env.REFRESH_TOKEN_EXPIRY ?? 7 * 86400)
}
if (!config.databaseUrl || !config.jwtSecret) throw new Error('lean: DATABASE_URL and JWT_SECRET are required')

const ARGON2 = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 }
const dummyHash = argon2.hash('dummy-password-for-timing', ARGON2)

const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.poolSize, application_name: 'bench-lean' })

// ---- SQL -----------------------------------------------------------------------------------
// Columns of a user as returned, in this order (rows come back as arrays).
const COLS = 'id, email, first_name, last_name, status, email_verified, roles, profile, last_login_at, created_at, updated_at, deleted_at'
const uCOLS = COLS.split(', ').map(c => `u.${c}`).join(', ')
const SQL = {
  authState: `select u.status, u.roles, s.revoked_at is null and s.expires_at > now()
    from users u join sessions s on s.id = $1 and s.user_id = u.id where u.id = $2 and u.deleted_at is null`,
  byId: `select ${COLS} from users where id = $1 and deleted_at is null`,
  page: `select ${COLS} from users where deleted_at is null order by created_at, id limit $1 offset $2`,
  // An index-only scan over users_created_live (the table is vacuumed, so the visibility map is set).
  count: 'select count(*)::int from users where deleted_at is null',
  after: `select ${COLS} from users where deleted_at is null and (created_at, id) > ($1, $2) order by created_at, id limit $3`,
  credentials: `select password_hash, ${COLS} from users where email = $1 and deleted_at is null`,
  // Session, first refresh token and last_login_at in one statement.
  login: `with s as (insert into sessions (user_id, expires_at) values ($1, $2) returning id),
      t as (insert into refresh_tokens (token_hash, session_id, user_id, expires_at) select $3, id, $1, $2 from s),
      u as (update users set last_login_at = now() where id = $1 returning ${COLS})
    select s.id, ${uCOLS} from s, u`,
  // Spend the token, store its successor and read the user in one statement.
  rotate: `with spent as (
      update refresh_tokens rt set spent_at = now() from sessions s
      where rt.token_hash = $1 and rt.spent_at is null and rt.expires_at > now()
        and s.id = rt.session_id and s.revoked_at is null and s.expires_at > now()
      returning rt.session_id, rt.user_id, rt.expires_at
    ), successor as (
      insert into refresh_tokens (token_hash, session_id, user_id, expires_at) select $2, session_id, user_id, expires_at from spent
    )
    select spent.session_id, ${uCOLS} from spent join users u on u.id = spent.user_id and u.deleted_at is null and u.status <> 'suspended'`,
  findToken: 'select session_id, spent_at is not null from refresh_tokens where token_hash = $1',
  revokeSession: 'update sessions set revoked_at = now() where id = $1 and revoked_at is null',
  // The user, its verification token and the email that carries it, in one statement (atomic).
  create: `with u as (
      insert into users (email, password_hash, first_name, last_name, status, roles, profile) values ($1, $2, $3, $4, $5, $6, $7) returning ${COLS}
    ), t as (
      insert into email_tokens (token_hash, user_id, purpose, expires_at) select $8, id, 'verify_email', now() + interval '24 hours' from u
    ), o as (
      insert into email_outbox (to_address, template, payload) select email, 'verify_email', jsonb_build_object('token', $9::text, 'userId', id) from u
    )
    select ${COLS} from u`,
  // A merge patch; $5: 0 keep the profile, 1 set it to null, 2 merge $6 into it. $9: the If-Match version (ms) or null.
  patch: `with old as (select email from users where id = $1 and deleted_at is null)
    update users u set email = coalesce($2, u.email),
      email_verified = u.email_verified and ($2::text is null or $2 = u.email),
      first_name = coalesce($3, u.first_name), last_name = coalesce($4, u.last_name),
      profile = case $5::int when 0 then u.profile when 1 then null else coalesce(u.profile, '{}') || $6::jsonb end,
      roles = coalesce($7, u.roles), status = coalesce($8, u.status), updated_at = now()
    from old where u.id = $1 and u.deleted_at is null and ($9::float8 is null or floor(extract(epoch from u.updated_at) * 1000) = $9)
    returning ${uCOLS}, old.email`,
  verifyEmail: `with t as (insert into email_tokens (token_hash, user_id, purpose, expires_at) values ($1, $2, 'verify_email', now() + interval '24 hours'))
    insert into email_outbox (to_address, template, payload) values ($3, 'verify_email', jsonb_build_object('token', $4::text, 'userId', $2::uuid))`
}
const q = (name, values) => pool.query({ name, text: SQL[name], values, rowMode: 'array' })

// ---- answers -----------------------------------------------------------------------------
class HttpError extends Error {
  constructor (status, code, message, details) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}
const invalid = (message, details) => new HttpError(400, 'VALIDATION_ERROR', message, details)
const unauthorized = (message = 'The access token is missing or invalid') => new HttpError(401, 'UNAUTHORIZED', message)
const forbidden = () => new HttpError(403, 'FORBIDDEN', 'You do not have permission to do this')
const notFound = () => new HttpError(404, 'NOT_FOUND', 'User not found')

function send (res, status, payload, headers) {
  headers['content-type'] = 'application/json; charset=utf-8'
  headers['content-length'] = Buffer.byteLength(payload)
  res.writeHead(status, headers)
  res.end(payload)
}
function sendError (res, err, headers) {
  if (!(err instanceof HttpError)) {
    if (err?.code === '23505') err = new HttpError(409, 'EMAIL_TAKEN', 'A user with this email already exists', [{ field: 'email', message: 'is already taken' }])
    else if (err?.code === '22P02') err = invalid('A value is malformed')
    else {
      console.error(err)
      err = new HttpError(500, 'INTERNAL_ERROR', 'An unexpected error occurred')
    }
  }
  const error = { code: err.code, message: err.message }
  if (err.details) error.details = err.details
  error.requestId = headers['x-request-id']
  send(res, err.status, JSON.stringify({ success: false, error }), headers)
}

const iso = d => d === null ? null : d.toISOString()
const PROFILE_KEYS = ['bio', 'avatarUrl', 'phone', 'locale', 'timezone']
const profileOf = p => p === null ? null : { bio: p.bio ?? null, avatarUrl: p.avatarUrl ?? null, phone: p.phone ?? null, locale: p.locale ?? null, timezone: p.timezone ?? null }
/** A user row (array, COLS order, from offset `o`) as the contract returns it. */
const toUser = (r, o = 0) => ({
  id: r[o],
  email: r[o + 1],
  firstName: r[o + 2],
  lastName: r[o + 3],
  status: r[o + 4],
  emailVerified: r[o + 5],
  roles: r[o + 6],
  profile: profileOf(r[o + 7]),
  lastLoginAt: iso(r[o + 8]),
  createdAt: r[o + 9].toISOString(),
  updatedAt: r[o + 10].toISOString(),
  deletedAt: iso(r[o + 11])
})
// The version of a row is its updated_at (ms): cheap, and it changes with every write.
const etagOf = r => `"${r[10].getTime().toString(36)}"`

// ---- tokens ------------------------------------------------------------------------------
const JWT_HEADER = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')
const hmac = data => createHmac('sha256', config.jwtSecret).update(data).digest()
function signAccess (sub, sid) {
  const iat = Math.floor(Date.now() / 1000)
  const body = `${JWT_HEADER}.${Buffer.from(JSON.stringify({ sub, sid, iat, exp: iat + config.jwtExpirySec })).toString('base64url')}`
  return `${body}.${hmac(body).toString('base64url')}`
}
/** Only the header this server issues (HS256) is accepted: alg none or another algorithm fails here. */
function verifyAccess (authorization) {
  if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) throw unauthorized()
  const token = authorization.slice(7)
  const dot1 = token.indexOf('.')
  const dot2 = token.lastIndexOf('.')
  if (dot1 <= 0 || dot2 === dot1 || token.slice(0, dot1) !== JWT_HEADER) throw unauthorized()
  const given = Buffer.from(token.slice(dot2 + 1), 'base64url')
  const expected = hmac(token.slice(0, dot2))
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw unauthorized()
  let claims
  try { claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString()) } catch { throw unauthorized() }
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) throw new HttpError(401, 'TOKEN_EXPIRED', 'The access token has expired')
  if (typeof claims.sub !== 'string' || typeof claims.sid !== 'string') throw unauthorized()
  return claims
}
const randomToken = () => randomBytes(32).toString('base64url')
const sha256 = token => createHash('sha256').update(token).digest('base64url')

// Cached auth state per user and session, dropped by the database's own notifications (triggers on
// users.status/roles/deleted_at and sessions.revoked_at, see schema.sql), so every instance sees a
// revocation at once; a load that raced a notification is not stored.
const PERMISSIONS = { admin: ['users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read'], user: [] }
const authCache = new Map()
let generation = 0
const listener = new pg.Client({ connectionString: config.databaseUrl, application_name: 'bench-lean:listen' })
listener.on('notification', ({ payload }) => { generation++; authCache.delete(payload) })
await listener.connect()
await listener.query('listen lean_auth')

async function authenticate (req) {
  const { sub, sid } = verifyAccess(req.headers.authorization)
  const now = Date.now()
  let sessions = authCache.get(sub)
  let hit = sessions?.get(sid)
  if (!hit || hit.expiresAt <= now) {
    const seen = generation
    const { rows: [row] } = await q('authState', [sid, sub]).catch(err => { if (err.code === '22P02') throw unauthorized(); throw err })
    hit = { ok: row !== undefined && row[0] !== 'suspended' && row[2], permissions: new Set(row ? row[1].flatMap(r => PERMISSIONS[r] ?? []) : []), expiresAt: now + 60_000 }
    if (seen === generation) {
      if (authCache.size > 100_000) authCache.clear()
      if (!sessions) authCache.set(sub, sessions = new Map())
      sessions.set(sid, hit)
    }
  }
  if (!hit.ok) throw unauthorized('The access token is no longer valid')
  return { id: sub, permissions: hit.permissions }
}
const allow = (actor, permission, selfId) => {
  if (!actor.permissions.has(permission) && actor.id !== selfId) throw forbidden()
}

// ---- validation (by hand, only what the routes take) --------------------------------------
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i
const STATUSES = new Set(['active', 'suspended', 'pending'])
const ROLES = new Set(Object.keys(PERMISSIONS))
const str = (v, min, max) => typeof v === 'string' && v.length >= min && v.length <= max
const name = v => str(v, 1, 100) && /\S/.test(v)

function checkBody (body, allowed, details = []) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('The request is invalid', [{ message: 'body must be an object' }])
  for (const key of Object.keys(body)) if (!allowed.includes(key)) details.push({ field: key, message: 'is not allowed' })
  return details
}
function checkProfile (p, details) {
  if (p === undefined || p === null) return
  if (typeof p !== 'object' || Array.isArray(p)) return details.push({ field: 'profile', message: 'must be an object or null' })
  for (const [k, v] of Object.entries(p)) {
    if (!PROFILE_KEYS.includes(k)) details.push({ field: `profile.${k}`, message: 'is not allowed' })
    else if (v !== null && !str(v, 0, k === 'bio' ? 2000 : k === 'avatarUrl' ? 2048 : 64)) details.push({ field: `profile.${k}`, message: 'is invalid' })
  }
}
function checkRolesAndStatus (body, details) {
  if (body.roles !== undefined && !(Array.isArray(body.roles) && body.roles.length <= 20 && body.roles.every(r => str(r, 1, 50)) && new Set(body.roles).size === body.roles.length)) details.push({ field: 'roles', message: 'is invalid' })
  if (body.status !== undefined && !STATUSES.has(body.status)) details.push({ field: 'status', message: 'is invalid' })
}
function passwordProblems (password, email) {
  const problems = []
  if (password.length < 8 || password.length > 128) problems.push('must be 8 to 128 characters long')
  if (!/[a-z]/.test(password)) problems.push('must contain a lower-case letter')
  if (!/[A-Z]/.test(password)) problems.push('must contain an upper-case letter')
  if (!/[0-9]/.test(password)) problems.push('must contain a digit')
  if (password.toLowerCase() === email) problems.push('must not be the email address')
  return problems.map(message => ({ field: 'password', message }))
}
function assertRoles (actor, body) {
  if ((body.roles !== undefined || body.status !== undefined) && !actor.permissions.has('roles:manage')) throw forbidden()
  const unknown = (body.roles ?? []).filter(r => !ROLES.has(r))
  if (unknown.length) throw invalid('Unknown role', unknown.map(r => ({ field: 'roles', message: `unknown role "${r}"` })))
}

// ---- routes ------------------------------------------------------------------------------
async function getUser (req, res, headers, id) {
  const actor = await authenticate(req)
  if (!UUID.test(id)) throw invalid('The request is invalid', [{ field: 'id', message: 'must be a UUID' }])
  allow(actor, 'users:read', id)
  const { rows: [row] } = await q('byId', [id])
  if (!row) throw notFound()
  const etag = headers.etag = etagOf(row)
  headers['cache-control'] = 'private, no-cache'
  const inm = req.headers['if-none-match']
  if (inm && inm.split(',').some(t => { t = t.trim(); return t === etag || t === `W/${etag}` || t === '*' })) {
    res.writeHead(304, headers)
    return res.end()
  }
  send(res, 200, `{"success":true,"data":${JSON.stringify(toUser(row))}}`, headers)
}

const CURSOR = /^([0-9a-z]+)\.([0-9a-f-]{36})$/
async function listUsers (req, res, headers, search) {
  const actor = await authenticate(req)
  const params = new URLSearchParams(search)
  const int = (key, min, max, fallback) => {
    const raw = params.get(key)
    if (raw === null) return fallback
    const n = Number(raw)
    if (raw === '' || !Number.isInteger(n) || n < min || n > max) throw invalid('The request is invalid', [{ field: key, message: `must be an integer from ${min} to ${max}` }])
    return n
  }
  const page = int('page', 1, 1_000_000, 1)
  const limit = int('limit', 1, 100, 20)
  const sort = params.get('sort')
  if (sort !== null && sort !== 'createdAt') throw invalid('The lean floor lists by createdAt only', [{ field: 'sort', message: 'unsupported' }])
  allow(actor, 'users:read')
  const cursor = params.get('cursor')
  let rows
  let total = null
  if (cursor !== null) {
    // Opaque to clients: base64url of "<created_at in ms, base 36>.<id>".
    const m = CURSOR.exec(Buffer.from(cursor, 'base64url').toString())
    if (!m || !UUID.test(m[2])) throw invalid('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
    ;({ rows } = await q('after', [new Date(parseInt(m[1], 36)), m[2], limit + 1]))
  } else {
    const [list, count] = await Promise.all([q('page', [limit + 1, (page - 1) * limit]), q('count', [])])
    rows = list.rows
    total = count.rows[0][0]
  }
  const hasNext = rows.length > limit
  if (hasNext) rows.length = limit
  const last = rows[rows.length - 1]
  const nextCursor = hasNext ? Buffer.from(`${last[9].getTime().toString(36)}.${last[0]}`).toString('base64url') : null
  const pagination = { page: cursor === null ? page : null, limit, total, totalPages: total === null ? null : Math.ceil(total / limit), hasNext, nextCursor }
  send(res, 200, JSON.stringify({ success: true, data: rows.map(r => toUser(r)), pagination }), headers)
}

async function createUser (req, res, headers, body) {
  const actor = await authenticate(req)
  const details = checkBody(body, ['email', 'password', 'firstName', 'lastName', 'roles', 'status', 'profile'])
  if (!str(body.email, 3, 254) || !EMAIL.test(body.email)) details.push({ field: 'email', message: 'must be an email address' })
  if (!str(body.password, 1, 1024)) details.push({ field: 'password', message: 'is required' })
  if (!name(body.firstName)) details.push({ field: 'firstName', message: 'is required' })
  if (!name(body.lastName)) details.push({ field: 'lastName', message: 'is required' })
  checkRolesAndStatus(body, details)
  checkProfile(body.profile, details)
  if (details.length) throw invalid('The request is invalid', details)
  allow(actor, 'users:write')
  assertRoles(actor, body)
  const email = body.email.toLowerCase()
  const problems = passwordProblems(body.password, email)
  if (problems.length) throw invalid('The password does not meet the policy', problems)
  const hash = await argon2.hash(body.password, ARGON2)
  const token = randomToken()
  const { rows: [row] } = await q('create', [email, hash, body.firstName, body.lastName, body.status ?? 'active', body.roles ?? ['user'], body.profile ?? null, sha256(token), token])
  headers.location = `/api/v1/users/${row[0]}`
  headers.etag = etagOf(row)
  send(res, 201, `{"success":true,"data":${JSON.stringify(toUser(row))}}`, headers)
}

async function patchUser (req, res, headers, id, body) {
  const actor = await authenticate(req)
  if (!UUID.test(id)) throw invalid('The request is invalid', [{ field: 'id', message: 'must be a UUID' }])
  const details = checkBody(body, ['email', 'firstName', 'lastName', 'profile', 'roles', 'status'])
  if (body.email !== undefined && (!str(body.email, 3, 254) || !EMAIL.test(body.email))) details.push({ field: 'email', message: 'must be an email address' })
  for (const key of ['firstName', 'lastName']) if (body[key] !== undefined && !name(body[key])) details.push({ field: key, message: 'is invalid' })
  checkRolesAndStatus(body, details)
  checkProfile(body.profile, details)
  if (details.length) throw invalid('The request is invalid', details)
  allow(actor, 'users:write', id)
  assertRoles(actor, body)
  const ifMatch = req.headers['if-match']
  const version = ifMatch === undefined ? null : /^(?:W\/)?"([0-9a-z]+)"$/.exec(ifMatch.trim())
  if (ifMatch !== undefined && !version) throw new HttpError(412, 'PRECONDITION_FAILED', 'The user has changed since that ETag')
  const email = body.email?.toLowerCase() ?? null
  const profileMode = body.profile === undefined ? 0 : body.profile === null ? 1 : 2
  const { rows: [row] } = await q('patch', [id, email, body.firstName ?? null, body.lastName ?? null, profileMode, profileMode === 2 ? body.profile : null, body.roles ?? null, body.status ?? null, version ? parseInt(version[1], 36) : null])
  if (!row) {
    if (version && (await q('byId', [id])).rows.length) throw new HttpError(412, 'PRECONDITION_FAILED', 'The user has changed since that ETag')
    throw notFound()
  }
  if (email !== null && email !== row[12]) {
    const token = randomToken()
    await q('verifyEmail', [sha256(token), id, email, token])
  }
  headers.etag = etagOf(row)
  send(res, 200, `{"success":true,"data":${JSON.stringify(toUser(row))}}`, headers)
}

function pairJson (sessionId, userId, refreshToken, row) {
  return `{"success":true,"data":${JSON.stringify({ accessToken: signAccess(userId, sessionId), refreshToken, tokenType: 'Bearer', expiresIn: config.jwtExpirySec, user: toUser(row, 1) })}}`
}

async function login (req, res, headers, body) {
  const details = checkBody(body, ['email', 'password'])
  if (!str(body.email, 1, 254)) details.push({ field: 'email', message: 'is required' })
  if (!str(body.password, 1, 1024)) details.push({ field: 'password', message: 'is required' })
  if (details.length) throw invalid('The request is invalid', details)
  const { rows: [account] } = await q('credentials', [body.email.trim().toLowerCase()])
  const valid = await argon2.verify(account ? account[0] : await dummyHash, body.password).catch(() => false)
  if (!account || !valid || account[5] === 'suspended') throw new HttpError(401, 'INVALID_CREDENTIALS', 'Invalid email or password')
  const refreshToken = randomToken()
  const { rows: [row] } = await q('login', [account[1], new Date(Date.now() + config.refreshExpirySec * 1000), sha256(refreshToken)])
  headers['cache-control'] = 'no-store'
  send(res, 200, pairJson(row[0], row[1], refreshToken, row), headers)
}

async function refresh (req, res, headers, body) {
  const details = checkBody(body, ['refreshToken'])
  if (!str(body.refreshToken, 1, 1024)) details.push({ field: 'refreshToken', message: 'is required' })
  if (details.length) throw invalid('The request is invalid', details)
  headers['cache-control'] = 'no-store'
  const hash = sha256(body.refreshToken)
  const successor = randomToken()
  const { rows: [row] } = await q('rotate', [hash, sha256(successor)])
  if (!row) {
    const { rows: [token] } = await q('findToken', [hash])
    if (token?.[1]) {
      await q('revokeSession', [token[0]])
      throw new HttpError(401, 'TOKEN_REUSED', 'The refresh token was already used; every token of this login is revoked')
    }
    throw unauthorized('The refresh token is invalid or expired')
  }
  send(res, 200, pairJson(row[0], row[1], successor, row), headers)
}

// ---- HTTP --------------------------------------------------------------------------------
function readJson (req, mergePatch = false) {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] ?? ''
    if (!type.startsWith('application/json') && !(mergePatch && type.startsWith('application/merge-patch+json'))) {
      return reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send application/json'))
    }
    let text = ''
    req.setEncoding('utf8')
    req.on('data', chunk => {
      text += chunk
      if (text.length > 102_400) reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', 'Request body is too large'))
    })
    req.on('end', () => { try { resolve(JSON.parse(text)) } catch { reject(invalid('Body is not valid JSON')) } })
    req.on('error', reject)
  })
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const USER_PREFIX = '/api/v1/users/'

async function handle (req, res) {
  const sent = req.headers['x-request-id']
  const headers = { 'x-request-id': typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID() }
  try {
    const qi = req.url.indexOf('?')
    const path = qi < 0 ? req.url : req.url.slice(0, qi)
    const method = req.method
    if (path.startsWith(USER_PREFIX) && path.length > USER_PREFIX.length && path.indexOf('/', USER_PREFIX.length) < 0) {
      const id = path.slice(USER_PREFIX.length)
      if (method === 'GET') return await getUser(req, res, headers, id)
      if (method === 'PATCH') return await patchUser(req, res, headers, id, await readJson(req, true))
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Method ${method} not allowed`)
    }
    if (path === '/api/v1/users' || path === '/api/v1/users/') {
      if (method === 'GET') return await listUsers(req, res, headers, qi < 0 ? '' : req.url.slice(qi + 1))
      if (method === 'POST') return await createUser(req, res, headers, await readJson(req))
    } else if (method === 'POST' && path === '/api/v1/auth/login') {
      return await login(req, res, headers, await readJson(req))
    } else if (method === 'POST' && path === '/api/v1/auth/refresh') {
      return await refresh(req, res, headers, await readJson(req))
    } else if (method === 'GET' && path === '/health') {
      return send(res, 200, '{"success":true,"data":{"status":"ok"}}', headers)
    }
    throw new HttpError(404, 'NOT_FOUND', `Route ${method} ${path} not found`)
  } catch (err) {
    sendError(res, err, headers)
  }
}

const server = http.createServer(handle)
server.listen(config.port, config.host)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    Promise.allSettled([pool.end(), listener.end()]).finally(() => process.exit(0))
  })
}

import { createHash } from 'node:crypto'
import { envSchema } from 'env-schema'
import proxyAddr from '@fastify/proxy-addr'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseDuration } from './lib/duration.js'
import type { PiiKey } from './lib/secret-box.js'

const DURATION = '\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|min|h|d)?\\s*'
const Duration = (defaultValue: string) => Type.String({ default: defaultValue, pattern: `^${DURATION}$` })
/** A duration with no default: unset or empty (as docker-compose passes an unset variable) means none. */
const OptionalDuration = () => Type.Optional(Type.String({ pattern: `^(${DURATION})?$` }))

export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_REPLICA_URL: Type.Optional(Type.String({ minLength: 1 })),
  DATA_DIR: Type.String({ default: './data' }),
  DB_POOL_SIZE: Type.Integer({ default: 8, minimum: 1, maximum: 200 }),
  DB_STATEMENT_TIMEOUT: Duration('10s'),
  REDIS_URL: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_KEY_PREFIX: Type.String({ default: 'um:' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  JWT_EXPIRY: Duration('15m'),
  JWT_ISSUER: Type.String({ default: 'user-management-api' }),
  JWT_AUDIENCE: Type.String({ default: 'user-management-api' }),
  REFRESH_TOKEN_EXPIRY: Duration('7d'),
  MFA_ENCRYPTION_KEY: Type.Optional(Type.String({ minLength: 1 })),
  PII_ENCRYPTION_KEYS: Type.Optional(Type.String()),
  MFA_ISSUER: Type.String({ default: 'User Management API', minLength: 1, maxLength: 100 }),
  MFA_TOKEN_TTL: Duration('5m'),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),
  CORS_ORIGINS: Type.String({ default: '' }),
  ADMIN_EMAIL: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$' })),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  EMAIL_TRANSPORT: Type.Union([Type.Literal('log'), Type.Literal('smtp'), Type.Literal('capture')], { default: 'log' }),
  SMTP_URL: Type.Optional(Type.String()),
  EMAIL_FROM: Type.String({ default: 'no-reply@localhost' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  RATE_LIMIT_MAX: Type.Integer({ default: 1000, minimum: 1 }),
  RATE_LIMIT_WINDOW: Duration('1m'),
  AUTH_RATE_LIMIT_MAX: Type.Integer({ default: 30, minimum: 1 }),
  RATE_LIMIT_USER_MAX: Type.Integer({ default: 1000, minimum: 1 }),
  GRAPHQL_MAX_COST: Type.Integer({ default: 5000, minimum: 1 }),
  PASSWORD_BREACH_CHECK_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  LOGIN_MAX_FAILURES: Type.Integer({ default: 5, minimum: 1 }),
  LOGIN_LOCK_WINDOW: Duration('15m'),
  LOGIN_IP_MAX_FAILURES: Type.Integer({ default: 100, minimum: 1 }),
  EMAIL_POLL_INTERVAL: Duration('5s'),
  APP_URL: Type.String({ default: 'http://localhost:3000' }),
  REFRESH_REUSE_GRACE: Type.Number({ default: 0, minimum: 0 }),
  REQUIRE_EMAIL_VERIFICATION: Type.Boolean({ default: false }),
  BODY_LIMIT: Type.Integer({ default: 102400, minimum: 1024 }),
  TEST_ENDPOINTS: Type.Boolean({ default: false }),
  MAX_EVENT_LOOP_DELAY: Duration('1s'),
  MAX_HEAP_USED_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  METRICS_ALLOW: Type.String({ default: 'loopback' }),
  WEBAUTHN_RP_ID: Type.String({ default: 'localhost', minLength: 1, pattern: '^[A-Za-z0-9.-]+$' }),
  WEBAUTHN_RP_NAME: Type.String({ default: 'user-management-api', minLength: 1, maxLength: 100 }),
  WEBAUTHN_ORIGINS: Type.Optional(Type.String({ minLength: 1 })),
  OIDC_PROVIDERS: Type.String({ default: '' }),
  OIDC_REDIRECT_URIS: Type.String({ default: '' }),
  PUBLIC_URL: Type.Optional(Type.String({ minLength: 1 })),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false }),
  WEBHOOK_POLL_INTERVAL: Duration('1s'),
  WEBHOOK_TIMEOUT: Duration('10s'),
  WEBHOOK_RETRY_BASE: Duration('1m'),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ default: 7, minimum: 1, maximum: 20 }),
  WEBHOOK_CIRCUIT_THRESHOLD: Type.Integer({ default: 10, minimum: 1 }),
  WEBHOOK_CIRCUIT_COOLDOWN: Duration('5m'),
  WEBHOOK_SECRET_GRACE: Duration('24h'),
  EVENTS_HEARTBEAT: Duration('15s'),
  EVENTS_MAX_BUFFER: Type.Integer({ default: 1048576, minimum: 1024 }),
  RETENTION_DELETED_USERS: OptionalDuration(),
  RETENTION_AUDIT: OptionalDuration(),
  RETENTION_ENDED: Duration('7d'),
  RETENTION_INTERVAL: Duration('1h'),
  CONSENT_PURPOSES: Type.String({ default: 'terms,privacy,marketing' }),
  AUDIT_DATA_ACCESS: Type.Boolean({ default: false })
})
type Env = Static<typeof EnvSchema>

export interface Config {
  env: string
  production: boolean
  port: number
  host: string
  databaseUrl?: string
  /** A streaming replica of DATABASE_URL: lag-tolerant reads go there (see src/db/read-routing.ts). */
  databaseReplicaUrl?: string
  /** A directory for the embedded database, or 'memory://' to keep it in memory. */
  dataDir: string
  /**
   * A dump of an embedded database (PGlite's dumpDataDir) that a 'memory://' one starts from, so
   * it skips initdb and the migrations the dump already holds: the tests' many apps start 3× faster.
   */
  embeddedTemplate?: Blob
  dbPoolSize: number
  dbStatementTimeoutMs: number
  redisUrl?: string
  /** A Redis Cluster's seed nodes (REDIS_CLUSTER_NODES), instead of redisUrl. */
  redisClusterNodes?: Array<{ host: string, port: number }>
  /** Prefixes every Redis key, so several deployments (or test runs) can share one server. */
  redisKeyPrefix: string
  jwtSecret: string
  jwtExpirySec: number
  jwtIssuer: string
  jwtAudience: string
  refreshTokenExpirySec: number
  /** 32 bytes: seals TOTP secrets (AES-256-GCM) and keys the recovery-code hashes. */
  mfaEncryptionKey: Buffer
  /** PII_ENCRYPTION_KEYS: the first key seals, every one opens; empty = personal data stays in clear. */
  piiKeys: PiiKey[]
  /** The issuer an authenticator app shows next to the account. */
  mfaIssuer: string
  /** How long the mfaToken of a login awaiting its second factor lives. */
  mfaTokenTtlSec: number
  logLevel: Env['LOG_LEVEL']
  corsOrigins: string[]
  adminEmail?: string
  adminPassword?: string
  /** capture: emails are only kept in the outbox, for test pipelines to read (TEST_ENDPOINTS). */
  emailTransport: 'log' | 'smtp' | 'capture'
  smtpUrl?: string
  emailFrom: string
  trustProxy: boolean | number | string[]
  rateLimitMax: number
  rateLimitWindowMs: number
  authRateLimitMax: number
  /** Authenticated requests per user per window, across instances, on top of the per-IP budgets. */
  rateLimitUserMax: number
  /** The most a GraphQL operation may cost (each field 1, a list field its page size times what one item costs). */
  graphqlMaxCost: number
  /** A k-anonymity range API of breached passwords (Pwned Passwords); unset: no such check. */
  passwordBreachCheckUrl?: string
  loginMaxFailures: number
  loginLockWindowMs: number
  /** Failed logins from one client IP, across accounts, within the lock window before that IP is refused. */
  loginIpMaxFailures: number
  /** How often the email outbox is polled; 0 stops the delivery worker. */
  emailPollIntervalMs: number
  /** The web app that email links open (verification, password reset). */
  appUrl: string
  refreshReuseGraceSec: number
  requireEmailVerification: boolean
  /** Routes under /api/v1/test for test pipelines (the captured emails); refused in production. */
  testEndpoints: boolean
  /** Overload: above either, requests are 503 (0 turns a check off). */
  maxEventLoopDelayMs: number
  maxHeapUsedBytes: number
  /** /metrics on its own port (not on the API's); without it, on the API port to metricsAllow only. */
  metricsPort?: number
  /** Addresses and CIDRs (and proxy-addr's names: loopback, linklocal, uniquelocal). */
  metricsAllow: string[]
  bodyLimit: number
  /** Passkeys: the relying party's id (a registrable domain of the origins) and the name authenticators show. */
  webauthnRpId: string
  webauthnRpName: string
  /** The origins (scheme://host[:port]) a WebAuthn ceremony may come from. */
  webauthnOrigins: string[]
  /** External OpenID Connect providers users may sign in with (OIDC_PROVIDERS). */
  oidcProviders: OidcProviderConfig[]
  /** Where a provider sign-in may send the browser back to, with its code or error (OIDC_REDIRECT_URIS). */
  oidcRedirectUris: string[]
  /** The service's own external base URL, without a trailing slash: provider callbacks are registered under it. */
  publicUrl: string
  /** Webhooks (services/webhooks.ts). allowPrivate: URLs whose host resolves to loopback, private or link-local addresses are accepted. */
  webhookAllowPrivate: boolean
  /** How often due deliveries are looked for (besides the database's notification); 0: only deliverPending. */
  webhookPollIntervalMs: number
  webhookTimeoutMs: number
  /** The wait after the first failed attempt; each later one is 4 times the previous, with jitter. */
  webhookRetryBaseMs: number
  webhookMaxAttempts: number
  /** Failed attempts in a row that open a webhook's circuit, and for how long it stays open. */
  webhookCircuitThreshold: number
  webhookCircuitCooldownMs: number
  /** How long the previous secret still signs (beside the new one) after a rotation. */
  webhookSecretGraceMs: number
  /** How often an event stream sends a heartbeat (and checks that its login is still live). */
  eventsHeartbeatMs: number
  /** Bytes an event stream's connection may hold unsent before its client is dropped as too slow. */
  eventsMaxBufferBytes: number
  /** Retention (services/retention.ts). Soft-deleted users are erased this long after their deletion; unset: never. */
  retentionDeletedUsersMs?: number
  /** Audit rows older than this are deleted; unset: kept for ever. */
  retentionAuditMs?: number
  /** How long spent or expired tokens, ended logins, sent emails and finished webhook deliveries are kept after they end. */
  retentionEndedMs: number
  /** How often the purge runs (on one instance); 0: only when called (retention.run). */
  retentionIntervalMs: number
  /** How long an event-stream ticket stays valid (the contract's 60 s; only tests lower it). */
  eventTicketTtlSec: number
  /** The purposes a user consents to (CONSENT_PURPOSES), in the order given. */
  consentPurposes: string[]
  /** Reads of another user's record are audited as user.viewed (AUDIT_DATA_ACCESS), written in batches off the read path. */
  auditDataAccess: boolean
  /** How long a user.viewed row may wait in memory before its batch is written (only tests change it). */
  accessAuditFlushMs: number
  /** argon2 memory cost in KiB; only tests lower it. */
  argon2MemoryKiB: number
}

const OidcProviderSchema = Type.Object({
  // It is a path segment and part of the audit's method (oidc:<name>).
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,49}$' }),
  issuer: Type.String({ minLength: 1 }),
  clientId: Type.String({ minLength: 1 }),
  clientSecret: Type.String({ minLength: 1 }),
  scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }), { minItems: 1 }))
}, { additionalProperties: false })
export type OidcProviderConfig = Required<Static<typeof OidcProviderSchema>>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const DEV_SECRET = 'development-only-secret-change-me-0123456789'

function parseTrustProxy (value: string): Config['trustProxy'] {
  const v = value.trim()
  if (v === '' || v === 'false') return false
  if (v === 'true') return true
  if (/^\d+$/.test(v)) return Number(v)
  return v.split(',').map(s => s.trim()).filter(Boolean)
}

function parseClusterNodes (value: string | undefined): Config['redisClusterNodes'] {
  if (value === undefined) return undefined
  const nodes = value.split(',').map(s => s.trim()).filter(Boolean).map(node => {
    const match = /^(\[[0-9a-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/i.exec(node)
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) throw new ConfigError(`REDIS_CLUSTER_NODES: "${node}" is not host:port`)
    return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) }
  })
  if (nodes.length === 0) throw new ConfigError('REDIS_CLUSTER_NODES: no host:port given')
  return nodes
}

/** An optional duration in ms: undefined when unset or empty. */
function optionalMsOf (name: string, value: string | undefined): number | undefined {
  return value === undefined || value.trim() === '' ? undefined : secondsOf(name, value) * 1000
}

function secondsOf (name: string, value: string): number {
  const ms = parseDuration(value)
  if (ms === undefined) throw new ConfigError(`${name}: "${value}" is not a duration (e.g. 900, 15m, 7d)`)
  return ms / 1000
}

/**
 * MFA_ENCRYPTION_KEY: 32 bytes as 64 hex digits or base64 (base64url too). Unset outside
 * production, a key derived from JWT_SECRET (itself a development default there), so a development
 * database keeps working across restarts; production refuses to start without a real one.
 */
export function mfaKeyOf (value: string | undefined, production: boolean, jwtSecret: string): Buffer {
  if (value === undefined) {
    if (production) throw new ConfigError('MFA_ENCRYPTION_KEY is required when NODE_ENV=production (32 bytes: openssl rand -base64 32)')
    return createHash('sha256').update('development-only MFA key\0').update(jwtSecret).digest()
  }
  const v = value.trim()
  const key = /^[0-9a-f]{64}$/i.test(v) ? Buffer.from(v, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(v) ? Buffer.from(v, 'base64') : undefined
  if (!key || key.length !== 32) throw new ConfigError('MFA_ENCRYPTION_KEY must be 32 bytes, as 64 hex digits or base64 (openssl rand -base64 32)')
  if (new Set(key).size < 8) throw new ConfigError('MFA_ENCRYPTION_KEY is too weak (too few distinct bytes)')
  return key
}

/**
 * PII_ENCRYPTION_KEYS: `kid:base64key` comma list, each key 32 bytes (`openssl rand -base64 32`),
 * key ids unique ([A-Za-z0-9_-], up to 32 characters: stored beside every sealed value).
 */
export function parsePiiKeys (value: string | undefined): PiiKey[] {
  const entries = (value ?? '').split(',').map(s => s.trim()).filter(Boolean)
  const keys: PiiKey[] = []
  for (const [i, entry] of entries.entries()) {
    const match = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/_-]{43}=?)$/.exec(entry)
    const key = match ? Buffer.from(match[2], 'base64') : undefined
    if (!match || !key || key.length !== 32) {
      // The entry itself is never echoed: it may be a key.
      throw new ConfigError(`PII_ENCRYPTION_KEYS: entry ${i + 1} is not kid:base64key with a 32-byte key (kid of [A-Za-z0-9_-], key from openssl rand -base64 32)`)
    }
    if (new Set(key).size < 8) throw new ConfigError(`PII_ENCRYPTION_KEYS: the key "${match[1]}" is too weak (too few distinct bytes)`)
    if (keys.some(k => k.kid === match[1])) throw new ConfigError(`PII_ENCRYPTION_KEYS: the key id "${match[1]}" is given twice`)
    keys.push({ kid: match[1], key })
  }
  return keys
}

export function weakSecretReason (secret: string | undefined): string | undefined {
  if (!secret) return 'JWT_SECRET is required when NODE_ENV=production'
  if (secret.length < 32) return 'JWT_SECRET must be at least 32 characters when NODE_ENV=production'
  if (secret === DEV_SECRET || new Set(secret).size < 10) return 'JWT_SECRET is too weak (too few distinct characters)'
  return undefined
}

/** WEBAUTHN_ORIGINS: each an origin exactly as a browser writes it in clientDataJSON (no path, no trailing slash). */
function parseOrigins (value: string): string[] {
  const origins = value.split(',').map(s => s.trim()).filter(Boolean)
  if (origins.length === 0) throw new ConfigError('WEBAUTHN_ORIGINS: at least one origin is required')
  for (const origin of origins) {
    let parsed: URL | undefined
    try { parsed = new URL(origin) } catch {}
    if (!parsed || parsed.origin !== origin) throw new ConfigError(`WEBAUTHN_ORIGINS: "${origin}" is not an origin (e.g. https://app.example.com)`)
  }
  return origins
}

function absoluteUrl (name: string, value: string): URL {
  let url: URL
  try { url = new URL(value) } catch { throw new ConfigError(`${name}: "${value}" is not an absolute URL`) }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(`${name}: "${value}" is not an http(s) URL`)
  return url
}

/** OIDC_PROVIDERS: a JSON array of { name, issuer, clientId, clientSecret, scopes? }; names are unique. */
function parseOidcProviders (value: string): OidcProviderConfig[] {
  if (value.trim() === '') return []
  let parsed: unknown
  try { parsed = JSON.parse(value) } catch (err) {
    throw new ConfigError(`OIDC_PROVIDERS is not valid JSON (${(err as Error).message}); expected an array of { name, issuer, clientId, clientSecret, scopes? }`)
  }
  const schema = Type.Array(OidcProviderSchema)
  if (!Value.Check(schema, parsed)) {
    const first = Value.Errors(schema, parsed).First()
    throw new ConfigError(`OIDC_PROVIDERS: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}; expected an array of { name, issuer, clientId, clientSecret, scopes? }`)
  }
  const names = new Set<string>()
  return parsed.map(provider => {
    if (names.has(provider.name)) throw new ConfigError(`OIDC_PROVIDERS: the name "${provider.name}" is used twice`)
    names.add(provider.name)
    absoluteUrl(`OIDC_PROVIDERS (${provider.name}) issuer`, provider.issuer)
    const scopes = provider.scopes ?? ['openid', 'email', 'profile']
    return { ...provider, scopes: scopes.includes('openid') ? scopes : ['openid', ...scopes] }
  })
}

/** CONSENT_PURPOSES: a comma list of distinct names of lower-case letters, digits, _ and - (each a path segment). */
function parsePurposes (value: string): string[] {
  const purposes = value.split(',').map(s => s.trim()).filter(Boolean)
  if (purposes.length === 0) throw new ConfigError('CONSENT_PURPOSES: at least one purpose is required (e.g. terms,privacy,marketing)')
  for (const purpose of purposes) {
    if (!/^[a-z0-9][a-z0-9_-]{0,49}$/.test(purpose)) throw new ConfigError(`CONSENT_PURPOSES: "${purpose}" is not a purpose name ([a-z0-9_-], up to 50 characters)`)
  }
  if (new Set(purposes).size !== purposes.length) throw new ConfigError('CONSENT_PURPOSES: a purpose is listed twice')
  return purposes
}

/** Reads and validates the environment once; a bad value throws a ConfigError naming the variable. */
export function loadConfig (source: NodeJS.ProcessEnv = process.env): Config {
  let env: Env
  try {
    env = envSchema<Env>({ schema: EnvSchema, data: source, env: false, dotenv: false })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
  }
  const production = env.NODE_ENV === 'production'
  if (production) {
    const reason = weakSecretReason(env.JWT_SECRET)
    if (reason) throw new ConfigError(reason)
    // Either would hand out every reset and verification token, or send no email at all.
    if (env.TEST_ENDPOINTS) throw new ConfigError('TEST_ENDPOINTS=true is refused when NODE_ENV=production: it lets an admin read every email\'s token')
    if (env.EMAIL_TRANSPORT === 'capture') throw new ConfigError('EMAIL_TRANSPORT=capture is refused when NODE_ENV=production: no email would be sent')
  }
  if (env.EMAIL_TRANSPORT === 'smtp' && !env.SMTP_URL) throw new ConfigError('SMTP_URL is required when EMAIL_TRANSPORT=smtp')
  const metricsAllow = env.METRICS_ALLOW.split(',').map(s => s.trim()).filter(Boolean)
  try { proxyAddr.compile(metricsAllow) } catch (err) { throw new ConfigError(`METRICS_ALLOW: ${(err as Error).message}`) }
  if (env.REDIS_URL && env.REDIS_CLUSTER_NODES) throw new ConfigError('REDIS_URL and REDIS_CLUSTER_NODES are exclusive: set one')
  if (env.DATABASE_REPLICA_URL && !env.DATABASE_URL) throw new ConfigError('DATABASE_REPLICA_URL needs DATABASE_URL: it is a replica of that database')
  if (Boolean(env.ADMIN_EMAIL) !== Boolean(env.ADMIN_PASSWORD)) throw new ConfigError('ADMIN_EMAIL and ADMIN_PASSWORD must be set together')
  const webauthnOrigins = parseOrigins(env.WEBAUTHN_ORIGINS ?? `http://localhost:${env.PORT}`)
  const oidcProviders = parseOidcProviders(env.OIDC_PROVIDERS)
  const oidcRedirectUris = env.OIDC_REDIRECT_URIS.split(',').map(s => s.trim()).filter(Boolean)
  for (const uri of oidcRedirectUris) absoluteUrl('OIDC_REDIRECT_URIS', uri)
  if (oidcProviders.length > 0 && oidcRedirectUris.length === 0) throw new ConfigError('OIDC_REDIRECT_URIS is required when OIDC_PROVIDERS is set')
  // Proxies cut a connection silent for about a minute: a heartbeat must come, and well before that.
  const eventsHeartbeatMs = secondsOf('EVENTS_HEARTBEAT', env.EVENTS_HEARTBEAT) * 1000
  if (eventsHeartbeatMs <= 0 || eventsHeartbeatMs > 60_000) throw new ConfigError('EVENTS_HEARTBEAT must be above 0 and at most 60s')
  // The job queue offers a recurring job once per whole number of seconds.
  const retentionIntervalMs = secondsOf('RETENTION_INTERVAL', env.RETENTION_INTERVAL) * 1000
  if (retentionIntervalMs > 0 && retentionIntervalMs < 1000) throw new ConfigError('RETENTION_INTERVAL must be 0 (off) or at least 1s')
  const publicUrl = absoluteUrl('PUBLIC_URL', env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).href.replace(/\/+$/, '')
  return {
    env: env.NODE_ENV,
    production,
    port: env.PORT,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    databaseReplicaUrl: env.DATABASE_REPLICA_URL,
    dataDir: env.DATA_DIR,
    dbPoolSize: env.DB_POOL_SIZE,
    dbStatementTimeoutMs: secondsOf('DB_STATEMENT_TIMEOUT', env.DB_STATEMENT_TIMEOUT) * 1000,
    redisUrl: env.REDIS_URL,
    redisClusterNodes: parseClusterNodes(env.REDIS_CLUSTER_NODES),
    redisKeyPrefix: env.REDIS_KEY_PREFIX,
    jwtSecret: env.JWT_SECRET ?? DEV_SECRET,
    mfaEncryptionKey: mfaKeyOf(env.MFA_ENCRYPTION_KEY, production, env.JWT_SECRET ?? DEV_SECRET),
    piiKeys: parsePiiKeys(env.PII_ENCRYPTION_KEYS),
    mfaIssuer: env.MFA_ISSUER,
    mfaTokenTtlSec: secondsOf('MFA_TOKEN_TTL', env.MFA_TOKEN_TTL),
    jwtExpirySec: secondsOf('JWT_EXPIRY', env.JWT_EXPIRY),
    jwtIssuer: env.JWT_ISSUER,
    jwtAudience: env.JWT_AUDIENCE,
    refreshTokenExpirySec: secondsOf('REFRESH_TOKEN_EXPIRY', env.REFRESH_TOKEN_EXPIRY),
    logLevel: env.LOG_LEVEL,
    corsOrigins: env.CORS_ORIGINS.split(',').map(s => s.trim()).filter(Boolean),
    adminEmail: env.ADMIN_EMAIL?.toLowerCase(),
    adminPassword: env.ADMIN_PASSWORD,
    emailTransport: env.EMAIL_TRANSPORT,
    smtpUrl: env.SMTP_URL,
    emailFrom: env.EMAIL_FROM,
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    rateLimitMax: env.RATE_LIMIT_MAX,
    rateLimitWindowMs: secondsOf('RATE_LIMIT_WINDOW', env.RATE_LIMIT_WINDOW) * 1000,
    authRateLimitMax: env.AUTH_RATE_LIMIT_MAX,
    rateLimitUserMax: env.RATE_LIMIT_USER_MAX,
    graphqlMaxCost: env.GRAPHQL_MAX_COST,
    passwordBreachCheckUrl: env.PASSWORD_BREACH_CHECK_URL,
    loginMaxFailures: env.LOGIN_MAX_FAILURES,
    loginLockWindowMs: secondsOf('LOGIN_LOCK_WINDOW', env.LOGIN_LOCK_WINDOW) * 1000,
    loginIpMaxFailures: env.LOGIN_IP_MAX_FAILURES,
    emailPollIntervalMs: secondsOf('EMAIL_POLL_INTERVAL', env.EMAIL_POLL_INTERVAL) * 1000,
    appUrl: env.APP_URL.replace(/\/+$/, ''),
    refreshReuseGraceSec: env.REFRESH_REUSE_GRACE,
    requireEmailVerification: env.REQUIRE_EMAIL_VERIFICATION,
    bodyLimit: env.BODY_LIMIT,
    testEndpoints: env.TEST_ENDPOINTS,
    maxEventLoopDelayMs: secondsOf('MAX_EVENT_LOOP_DELAY', env.MAX_EVENT_LOOP_DELAY) * 1000,
    maxHeapUsedBytes: env.MAX_HEAP_USED_BYTES,
    metricsPort: env.METRICS_PORT,
    metricsAllow,
    webauthnRpId: env.WEBAUTHN_RP_ID.toLowerCase(),
    webauthnRpName: env.WEBAUTHN_RP_NAME,
    webauthnOrigins,
    oidcProviders,
    oidcRedirectUris,
    publicUrl,
    webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
    webhookPollIntervalMs: secondsOf('WEBHOOK_POLL_INTERVAL', env.WEBHOOK_POLL_INTERVAL) * 1000,
    webhookTimeoutMs: secondsOf('WEBHOOK_TIMEOUT', env.WEBHOOK_TIMEOUT) * 1000,
    webhookRetryBaseMs: secondsOf('WEBHOOK_RETRY_BASE', env.WEBHOOK_RETRY_BASE) * 1000,
    webhookMaxAttempts: env.WEBHOOK_MAX_ATTEMPTS,
    webhookCircuitThreshold: env.WEBHOOK_CIRCUIT_THRESHOLD,
    webhookCircuitCooldownMs: secondsOf('WEBHOOK_CIRCUIT_COOLDOWN', env.WEBHOOK_CIRCUIT_COOLDOWN) * 1000,
    webhookSecretGraceMs: secondsOf('WEBHOOK_SECRET_GRACE', env.WEBHOOK_SECRET_GRACE) * 1000,
    eventsHeartbeatMs,
    eventsMaxBufferBytes: env.EVENTS_MAX_BUFFER,
    retentionDeletedUsersMs: optionalMsOf('RETENTION_DELETED_USERS', env.RETENTION_DELETED_USERS),
    retentionAuditMs: optionalMsOf('RETENTION_AUDIT', env.RETENTION_AUDIT),
    retentionEndedMs: secondsOf('RETENTION_ENDED', env.RETENTION_ENDED) * 1000,
    retentionIntervalMs,
    eventTicketTtlSec: 60,
    consentPurposes: parsePurposes(env.CONSENT_PURPOSES),
    auditDataAccess: env.AUDIT_DATA_ACCESS,
    accessAuditFlushMs: 1000,
    argon2MemoryKiB: 19456
  }
}

import { envSchema } from 'env-schema'
import proxyAddr from '@fastify/proxy-addr'
import { Type, type Static } from '@sinclair/typebox'
import { parseDuration } from './lib/duration.js'

const Duration = (defaultValue: string) => Type.String({ default: defaultValue, pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|min|h|d)?\\s*$' })

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
  METRICS_ALLOW: Type.String({ default: 'loopback' })
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
  /** argon2 memory cost in KiB; only tests lower it. */
  argon2MemoryKiB: number
}

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

function secondsOf (name: string, value: string): number {
  const ms = parseDuration(value)
  if (ms === undefined) throw new ConfigError(`${name}: "${value}" is not a duration (e.g. 900, 15m, 7d)`)
  return ms / 1000
}

export function weakSecretReason (secret: string | undefined): string | undefined {
  if (!secret) return 'JWT_SECRET is required when NODE_ENV=production'
  if (secret.length < 32) return 'JWT_SECRET must be at least 32 characters when NODE_ENV=production'
  if (secret === DEV_SECRET || new Set(secret).size < 10) return 'JWT_SECRET is too weak (too few distinct characters)'
  return undefined
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
    argon2MemoryKiB: 19456
  }
}

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig, ConfigError } from '../src/config.js'

t.test('defaults follow the contract', async t => {
  const config = loadConfig({})
  t.equal(config.port, 3000)
  t.equal(config.dataDir, './data')
  t.equal(config.databaseUrl, undefined)
  t.equal(config.redisUrl, undefined)
  t.equal(config.jwtExpirySec, 900)
  t.equal(config.refreshTokenExpirySec, 7 * 86400)
  t.equal(config.rateLimitMax, 1000)
  t.equal(config.rateLimitWindowMs, 60_000)
  t.equal(config.authRateLimitMax, 30)
  t.equal(config.loginMaxFailures, 5)
  t.equal(config.loginLockWindowMs, 15 * 60_000)
  t.equal(config.refreshReuseGraceSec, 0)
  t.equal(config.requireEmailVerification, false)
  t.equal(config.trustProxy, false)
  t.equal(config.emailTransport, 'log')
})

t.test('values are parsed', async t => {
  const config = loadConfig({
    PORT: '8080',
    JWT_EXPIRY: '30s',
    REFRESH_TOKEN_EXPIRY: '1d',
    RATE_LIMIT_WINDOW: '1 min',
    LOGIN_LOCK_WINDOW: '900',
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
    CORS_ORIGINS: 'https://a.example, https://b.example',
    REQUIRE_EMAIL_VERIFICATION: 'true',
    ADMIN_EMAIL: 'Root@Example.com',
    ADMIN_PASSWORD: 'Secret123x'
  })
  t.equal(config.port, 8080)
  t.equal(config.jwtExpirySec, 30)
  t.equal(config.refreshTokenExpirySec, 86400)
  t.equal(config.rateLimitWindowMs, 60_000)
  t.equal(config.loginLockWindowMs, 900_000)
  t.same(config.trustProxy, ['10.0.0.0/8', '127.0.0.1'])
  t.same(config.corsOrigins, ['https://a.example', 'https://b.example'])
  t.equal(config.requireEmailVerification, true)
  t.equal(config.adminEmail, 'root@example.com')
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
})

t.test('a bad value stops the start with a message naming the variable', async t => {
  for (const [name, value] of [['PORT', 'eighty'], ['JWT_EXPIRY', 'soon'], ['RATE_LIMIT_MAX', '-1'], ['EMAIL_TRANSPORT', 'pigeon'], ['LOG_LEVEL', 'loud'], ['DB_POOL_SIZE', '0']]) {
    t.throws(() => loadConfig({ [name]: value }), { name: 'ConfigError', message: new RegExp(name) }, `${name}=${value}`)
  }
  t.throws(() => loadConfig({ ADMIN_EMAIL: 'a@b.example' }), /ADMIN_PASSWORD/)
  t.throws(() => loadConfig({ EMAIL_TRANSPORT: 'smtp' }), /SMTP_URL/)
})

t.test('production refuses a missing or weak JWT_SECRET', async t => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), ConfigError)
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' }), /JWT_SECRET/)
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'a'.repeat(64) }), /JWT_SECRET/)
  const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'k3Q9v!x7Lm2#Rt8Zp4Wn6Yb1Hc5Jd0Fs', MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64') })
  t.equal(config.production, true)
})

t.test('retention: unset or empty keeps, durations parsed, RETENTION_INTERVAL 0 or at least 1s', async t => {
  const defaults = loadConfig({})
  t.equal(defaults.retentionDeletedUsersMs, undefined, 'deleted users kept by default')
  t.equal(defaults.retentionAuditMs, undefined, 'audit kept by default')
  t.equal(defaults.retentionEndedMs, 7 * 86_400_000)
  t.equal(defaults.retentionIntervalMs, 3_600_000)
  const empty = loadConfig({ RETENTION_DELETED_USERS: '', RETENTION_AUDIT: '' })
  t.equal(empty.retentionDeletedUsersMs, undefined, 'empty (as docker-compose passes an unset variable) keeps')
  t.equal(empty.retentionAuditMs, undefined)
  const set = loadConfig({ RETENTION_DELETED_USERS: '30d', RETENTION_AUDIT: '400d', RETENTION_ENDED: '1d', RETENTION_INTERVAL: '0' })
  t.same([set.retentionDeletedUsersMs, set.retentionAuditMs, set.retentionEndedMs, set.retentionIntervalMs], [30 * 86_400_000, 400 * 86_400_000, 86_400_000, 0])
  for (const [name, value] of [['RETENTION_DELETED_USERS', 'a month'], ['RETENTION_AUDIT', '-1d'], ['RETENTION_ENDED', ''], ['RETENTION_INTERVAL', '500ms']]) {
    t.throws(() => loadConfig({ [name]: value }), { name: 'ConfigError', message: new RegExp(name) }, `${name}=${value}`)
  }
})

t.test('passkeys: WEBAUTHN_RP_ID, WEBAUTHN_RP_NAME, WEBAUTHN_ORIGINS', async t => {
  const defaults = loadConfig({ PORT: '8080' })
  t.equal(defaults.webauthnRpId, 'localhost')
  t.equal(defaults.webauthnRpName, 'user-management-api', 'the service name')
  t.same(defaults.webauthnOrigins, ['http://localhost:8080'], 'the service itself on its port')
  const set = loadConfig({ WEBAUTHN_RP_ID: 'Example.com', WEBAUTHN_RP_NAME: 'Example', WEBAUTHN_ORIGINS: 'https://example.com, https://app.example.com:8443' })
  t.equal(set.webauthnRpId, 'example.com')
  t.equal(set.webauthnRpName, 'Example')
  t.same(set.webauthnOrigins, ['https://example.com', 'https://app.example.com:8443'])
  for (const bad of ['https://example.com/', 'https://example.com/login', 'example.com', ' , ']) {
    t.throws(() => loadConfig({ WEBAUTHN_ORIGINS: bad }), ConfigError, `"${bad}" is refused`)
  }
  t.throws(() => loadConfig({ WEBAUTHN_RP_ID: 'https://example.com' }), ConfigError, 'an RP ID is a domain, not a URL')
})

t.test('OIDC_PROVIDERS, OIDC_REDIRECT_URIS and PUBLIC_URL', async t => {
  const none = loadConfig({})
  t.same(none.oidcProviders, [])
  t.same(none.oidcRedirectUris, [])
  t.equal(none.publicUrl, 'http://localhost:3000', 'PUBLIC_URL defaults to localhost and PORT')
  t.equal(loadConfig({ PORT: '8080' }).publicUrl, 'http://localhost:8080')
  t.equal(loadConfig({ PUBLIC_URL: 'https://api.example.com/' }).publicUrl, 'https://api.example.com', 'no trailing slash')

  const provider = { name: 'corp', issuer: 'https://id.example.com', clientId: 'c', clientSecret: 's' }
  const config = loadConfig({ OIDC_PROVIDERS: JSON.stringify([provider, { ...provider, name: 'other', scopes: ['email'] }]), OIDC_REDIRECT_URIS: 'https://app.example.com/cb, https://m.example.com/cb' })
  t.same(config.oidcProviders, [{ ...provider, scopes: ['openid', 'email', 'profile'] }, { ...provider, name: 'other', scopes: ['openid', 'email'] }], 'default scopes; openid always')
  t.same(config.oidcRedirectUris, ['https://app.example.com/cb', 'https://m.example.com/cb'])

  const withUris = (providers: string) => ({ OIDC_PROVIDERS: providers, OIDC_REDIRECT_URIS: 'https://app.example.com/cb' })
  t.throws(() => loadConfig(withUris('[{"name": "corp",')), { name: 'ConfigError', message: /OIDC_PROVIDERS is not valid JSON/ }, 'malformed JSON')
  t.throws(() => loadConfig(withUris('{"name":"corp"}')), { name: 'ConfigError', message: /OIDC_PROVIDERS/ }, 'not an array')
  t.throws(() => loadConfig(withUris(JSON.stringify([{ ...provider, clientSecret: undefined }]))), { name: 'ConfigError', message: /OIDC_PROVIDERS/ }, 'a field missing')
  t.throws(() => loadConfig(withUris(JSON.stringify([{ ...provider, name: 'Has Space' }]))), { name: 'ConfigError', message: /OIDC_PROVIDERS/ }, 'a name unfit for a path')
  t.throws(() => loadConfig(withUris(JSON.stringify([provider, provider]))), { name: 'ConfigError', message: /used twice/ }, 'a name twice')
  t.throws(() => loadConfig(withUris(JSON.stringify([{ ...provider, issuer: 'not a url' }]))), { name: 'ConfigError', message: /issuer/ }, 'a bad issuer')
  t.throws(() => loadConfig({ OIDC_PROVIDERS: JSON.stringify([provider]) }), { name: 'ConfigError', message: /OIDC_REDIRECT_URIS/ }, 'providers need redirect URIs')
  t.throws(() => loadConfig({ OIDC_REDIRECT_URIS: 'not-a-url' }), { name: 'ConfigError', message: /OIDC_REDIRECT_URIS/ })
  t.throws(() => loadConfig({ PUBLIC_URL: 'ftp://x' }), { name: 'ConfigError', message: /PUBLIC_URL/ })
})

t.test('MFA_ENCRYPTION_KEY: 32 bytes, required in production, a stable derived default elsewhere', async t => {
  const production = { NODE_ENV: 'production', JWT_SECRET: 'k3Q9v!x7Lm2#Rt8Zp4Wn6Yb1Hc5Jd0Fs' }
  t.throws(() => loadConfig(production), /MFA_ENCRYPTION_KEY is required when NODE_ENV=production/)
  const key = randomBytes(32)
  t.same(loadConfig({ ...production, MFA_ENCRYPTION_KEY: key.toString('base64') }).mfaEncryptionKey, key, 'base64')
  t.same(loadConfig({ ...production, MFA_ENCRYPTION_KEY: key.toString('base64url') }).mfaEncryptionKey, key, 'base64url')
  t.same(loadConfig({ ...production, MFA_ENCRYPTION_KEY: key.toString('hex') }).mfaEncryptionKey, key, 'hex')
  for (const bad of [randomBytes(16).toString('base64'), randomBytes(33).toString('hex'), 'not a key', '0'.repeat(64)]) {
    t.throws(() => loadConfig({ ...production, MFA_ENCRYPTION_KEY: bad }), /MFA_ENCRYPTION_KEY/, `refused: ${bad.slice(0, 12)}...`)
    t.throws(() => loadConfig({ MFA_ENCRYPTION_KEY: bad }), /MFA_ENCRYPTION_KEY/, 'a bad key is refused in development too')
  }
  const dev = loadConfig({}).mfaEncryptionKey
  t.equal(dev.length, 32, 'development: a 32-byte key')
  t.same(loadConfig({}).mfaEncryptionKey, dev, 'the same on every start (a development database keeps working)')
  t.notSame(loadConfig({ JWT_SECRET: 'another-development-secret' }).mfaEncryptionKey, dev, 'derived from JWT_SECRET')
})

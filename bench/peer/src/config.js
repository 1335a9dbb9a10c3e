'use strict'
// Configuration from the environment, as the seed document lists it.
const env = process.env

module.exports = {
  port: Number(env.PORT ?? 3000),
  host: env.HOST ?? '127.0.0.1',
  databaseUrl: env.DATABASE_URL,
  poolSize: Number(env.DB_POOL_SIZE ?? 20),
  jwtSecret: env.JWT_SECRET,
  jwtExpiry: Number(env.JWT_EXPIRY ?? 900),
  refreshExpiry: Number(env.REFRESH_TOKEN_EXPIRY ?? 7 * 86400),
  bcryptRounds: Number(env.BCRYPT_ROUNDS ?? 10)
}

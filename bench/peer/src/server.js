'use strict'
const config = require('./config')
const app = require('./app')
const { sequelize } = require('./models')

if (!config.databaseUrl || !config.jwtSecret) throw new Error('peer: DATABASE_URL and JWT_SECRET are required')

const server = app.listen(config.port, config.host)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    sequelize.close().finally(() => process.exit(0))
  })
}

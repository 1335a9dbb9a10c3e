'use strict'
// Creates the peer's tables (sequelize.sync) and the built-in roles; the bench runs it once per database.
const { sequelize, Role } = require('./models')

async function main () {
  await sequelize.sync()
  await Role.bulkCreate([
    { name: 'admin', description: 'Every permission', permissions: ['users:read', 'users:write', 'users:delete', 'roles:manage', 'audit:read'] },
    { name: 'user', description: 'Only itself', permissions: [] }
  ], { ignoreDuplicates: true })
  await sequelize.close()
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})

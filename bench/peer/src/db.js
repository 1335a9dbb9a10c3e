'use strict'
const { Sequelize } = require('sequelize')
const config = require('./config')

const sequelize = new Sequelize(config.databaseUrl, {
  dialect: 'postgres',
  logging: false,
  pool: { max: config.poolSize, min: 0, idle: 30000, acquire: 30000 }
})

module.exports = sequelize

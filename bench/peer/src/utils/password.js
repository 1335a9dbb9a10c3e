'use strict'
const bcrypt = require('bcrypt')
const config = require('../config')

// A hash to compare against when the email is unknown, so both failures take about as long.
const dummy = bcrypt.hash('dummy-password-for-timing', config.bcryptRounds)

module.exports = {
  hash: password => bcrypt.hash(password, config.bcryptRounds),
  compare: async (password, hash) => bcrypt.compare(password, hash ?? await dummy)
}

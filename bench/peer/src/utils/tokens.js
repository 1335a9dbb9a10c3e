'use strict'
const crypto = require('node:crypto')
const jwt = require('jsonwebtoken')
const config = require('../config')

module.exports = {
  signAccessToken: (user, sessionId) => jwt.sign({ sub: user.id, sid: sessionId, typ: 'access' }, config.jwtSecret, { algorithm: 'HS256', expiresIn: config.jwtExpiry }),
  verifyAccessToken: token => jwt.verify(token, config.jwtSecret, { algorithms: ['HS256'] }),
  randomToken: () => crypto.randomBytes(32).toString('base64url'),
  hashToken: token => crypto.createHash('sha256').update(token).digest('hex')
}

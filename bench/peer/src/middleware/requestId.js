'use strict'
const crypto = require('node:crypto')

const VALID = /^[A-Za-z0-9._:-]{1,128}$/

module.exports = function requestId (req, res, next) {
  const sent = req.get('x-request-id')
  req.id = sent && VALID.test(sent) ? sent : crypto.randomUUID()
  res.set('X-Request-Id', req.id)
  next()
}

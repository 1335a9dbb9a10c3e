'use strict'
const express = require('express')
const requestId = require('./middleware/requestId')
const errorHandler = require('./middleware/errorHandler')
const { AppError } = require('./utils/errors')

const app = express()
app.disable('x-powered-by')
app.use(requestId)
app.use(express.json({ limit: '100kb', type: ['application/json', 'application/merge-patch+json'] }))
// Writes must send JSON (415 otherwise).
app.use((req, res, next) => {
  if (['POST', 'PUT', 'PATCH'].includes(req.method) && !req.is(['application/json', 'application/merge-patch+json'])) {
    return next(new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported content type; send application/json'))
  }
  next()
})
app.get('/health', (req, res) => res.json({ success: true, data: { status: 'ok' } }))
app.use('/api/v1', require('./routes'))
app.use((req, res, next) => next(new AppError(404, 'NOT_FOUND', `Route ${req.method} ${req.path} not found`)))
app.use(errorHandler)

module.exports = app

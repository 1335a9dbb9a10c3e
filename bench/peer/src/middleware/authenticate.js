'use strict'
const { Op } = require('sequelize')
const { User, Role, Session } = require('../models')
const tokens = require('../utils/tokens')
const { UnauthorizedError, TokenExpiredError, ForbiddenError } = require('../utils/errors')

/** JWT validation, then the user (with roles) and the login the token belongs to. */
async function authenticate (req, res, next) {
  const header = req.get('authorization')
  if (!header || !header.startsWith('Bearer ')) throw UnauthorizedError()
  let payload
  try {
    payload = tokens.verifyAccessToken(header.slice(7))
  } catch (err) {
    throw err.name === 'TokenExpiredError' ? TokenExpiredError() : UnauthorizedError('The access token is missing or invalid')
  }
  const user = await User.findByPk(payload.sub, { include: [{ model: Role, as: 'roles', through: { attributes: [] } }] })
  if (!user || user.status === 'suspended') throw UnauthorizedError('The access token is no longer valid')
  const session = await Session.findOne({ where: { id: payload.sid, userId: user.id, revokedAt: null, expiresAt: { [Op.gt]: new Date() } } })
  if (!session) throw UnauthorizedError('The access token is no longer valid')
  req.user = { id: user.id, permissions: new Set(user.roles.flatMap(r => r.permissions)) }
  next()
}

/** RBAC: the permission, or the caller itself when `self` and the :id is the caller. */
const authorize = (permission, { self = false } = {}) => (req, res, next) => {
  if (req.user.permissions.has(permission) || (self && req.params.id === req.user.id)) return next()
  next(ForbiddenError())
}

module.exports = { authenticate, authorize }

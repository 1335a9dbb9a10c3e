'use strict'
const { sequelize, User, Role, UserProfile, Session, RefreshToken } = require('../models')
const password = require('../utils/password')
const tokens = require('../utils/tokens')
const config = require('../config')
const auditService = require('./auditService')
const userService = require('./userService')
const { InvalidCredentialsError, UnauthorizedError, TokenReusedError } = require('../utils/errors')

async function issuePair (user, session, transaction) {
  const refreshToken = tokens.randomToken()
  await RefreshToken.create({ tokenHash: tokens.hashToken(refreshToken), sessionId: session.id, userId: user.id, expiresAt: session.expiresAt }, { transaction })
  return { refreshToken, accessToken: tokens.signAccessToken(user, session.id) }
}

const answer = (pair, user) => ({ accessToken: pair.accessToken, refreshToken: pair.refreshToken, tokenType: 'Bearer', expiresIn: config.jwtExpiry, user: userService.toDTO(user) })

module.exports = {
  async login (email, secret, meta) {
    const user = await User.scope('withPassword').findOne({
      where: { email: email.trim().toLowerCase() },
      include: [{ model: Role, as: 'roles', attributes: ['name'], through: { attributes: [] } }, { model: UserProfile, as: 'profile' }]
    })
    const valid = await password.compare(secret, user?.passwordHash)
    if (!user || !valid || user.status === 'suspended') {
      await auditService.log('auth.login_failed', { userId: user?.id ?? null, changes: { reason: user ? 'wrong_password' : 'unknown_account' }, meta })
      throw InvalidCredentialsError()
    }
    const pair = await sequelize.transaction(async transaction => {
      const session = await Session.create({ userId: user.id, userAgent: meta.userAgent?.slice(0, 512), ip: meta.ip, expiresAt: new Date(Date.now() + config.refreshExpiry * 1000) }, { transaction })
      await user.update({ lastLoginAt: new Date() }, { transaction })
      await auditService.log('auth.login', { userId: user.id, actorId: user.id, meta }, transaction)
      return issuePair(user, session, transaction)
    })
    return answer(pair, user)
  },

  async refresh (refreshToken, meta) {
    const token = await RefreshToken.findOne({ where: { tokenHash: tokens.hashToken(refreshToken) }, include: [{ model: Session, as: 'session' }] })
    if (!token) throw UnauthorizedError('The refresh token is invalid or expired')
    if (token.spentAt) {
      await sequelize.transaction(async transaction => {
        await token.session.update({ revokedAt: new Date() }, { transaction })
        await auditService.log('auth.token_reused', { userId: token.userId, changes: { sessionId: token.sessionId }, meta }, transaction)
      })
      throw TokenReusedError()
    }
    const now = new Date()
    if (token.expiresAt <= now || token.session.revokedAt || token.session.expiresAt <= now) throw UnauthorizedError('The refresh token is invalid or expired')
    const user = await userService.getById(token.userId).catch(() => null)
    if (!user || user.status === 'suspended') throw UnauthorizedError('The refresh token is invalid or expired')
    const pair = await sequelize.transaction(async transaction => {
      const [spent] = await RefreshToken.update({ spentAt: now }, { where: { id: token.id, spentAt: null }, transaction })
      if (spent === 0) throw TokenReusedError()
      await token.session.update({ lastUsedAt: now }, { transaction })
      return issuePair(user, token.session, transaction)
    })
    return answer(pair, user)
  }
}

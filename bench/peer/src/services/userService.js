'use strict'
const crypto = require('node:crypto')
const { Op } = require('sequelize')
const { sequelize, User, UserProfile, Role, EmailVerificationToken, EmailOutbox } = require('../models')
const password = require('../utils/password')
const tokens = require('../utils/tokens')
const auditService = require('./auditService')
const { ValidationError, ForbiddenError, NotFoundError, PreconditionFailedError } = require('../utils/errors')

const include = [
  { model: Role, as: 'roles', attributes: ['name'], through: { attributes: [] } },
  { model: UserProfile, as: 'profile' }
]
const iso = date => date ? date.toISOString() : null

/** The user as the API returns it. */
function toDTO (user) {
  const p = user.profile
  return {
    id: user.id,
    email: user.email,
    firstName: user.firstName,
    lastName: user.lastName,
    status: user.status,
    emailVerified: user.emailVerified,
    roles: user.roles.map(r => r.name).sort(),
    profile: p ? { bio: p.bio, avatarUrl: p.avatarUrl, phone: p.phone, locale: p.locale, timezone: p.timezone } : null,
    lastLoginAt: iso(user.lastLoginAt),
    createdAt: iso(user.createdAt),
    updatedAt: iso(user.updatedAt),
    deletedAt: iso(user.deletedAt)
  }
}
const etagOf = dto => `"${crypto.createHash('sha1').update(JSON.stringify(dto)).digest('base64url')}"`

function passwordProblems (value, email) {
  const problems = []
  if (value.length < 8 || value.length > 128) problems.push('must be 8 to 128 characters long')
  if (!/[a-z]/.test(value)) problems.push('must contain a lower-case letter')
  if (!/[A-Z]/.test(value)) problems.push('must contain an upper-case letter')
  if (!/[0-9]/.test(value)) problems.push('must contain a digit')
  if (value.toLowerCase() === email.toLowerCase()) problems.push('must not be the email address')
  return problems.map(message => ({ field: 'password', message }))
}

function assertMayManage (actor, data) {
  if ((data.roles !== undefined || data.status !== undefined) && !actor.permissions.has('roles:manage')) {
    throw ForbiddenError('Only a caller with roles:manage may set roles or status')
  }
}

async function findRoles (names, transaction) {
  const roles = await Role.findAll({ where: { name: names }, transaction })
  const unknown = names.filter(n => !roles.some(r => r.name === n))
  if (unknown.length) throw ValidationError('Unknown role', unknown.map(n => ({ field: 'roles', message: `unknown role "${n}"` })))
  return roles
}

async function queueVerification (user, transaction) {
  const token = tokens.randomToken()
  await EmailVerificationToken.create({ userId: user.id, email: user.email, tokenHash: tokens.hashToken(token), expiresAt: new Date(Date.now() + 24 * 3600 * 1000) }, { transaction })
  await EmailOutbox.create({ toAddress: user.email, template: 'verify_email', payload: { token, userId: user.id } }, { transaction })
}

const encodeCursor = user => Buffer.from(JSON.stringify({ createdAt: user.createdAt.toISOString(), id: user.id })).toString('base64url')
function decodeCursor (cursor) {
  try {
    const { createdAt, id } = JSON.parse(Buffer.from(cursor, 'base64url').toString())
    const date = new Date(createdAt)
    if (typeof id !== 'string' || Number.isNaN(date.getTime())) throw new Error('bad cursor')
    return { createdAt: date, id }
  } catch {
    throw ValidationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
  }
}

module.exports = {
  toDTO,
  etagOf,

  async getById (id, options = {}) {
    const user = await User.findByPk(id, { include, ...options })
    if (!user) throw NotFoundError('User')
    return user
  },

  async list ({ page, limit, cursor }) {
    const order = [['createdAt', 'ASC'], ['id', 'ASC']]
    if (cursor) {
      const after = decodeCursor(cursor)
      const users = await User.findAll({
        where: { [Op.or]: [{ createdAt: { [Op.gt]: after.createdAt } }, { createdAt: after.createdAt, id: { [Op.gt]: after.id } }] },
        include,
        order,
        limit: limit + 1
      })
      const hasNext = users.length > limit
      const data = users.slice(0, limit)
      return { data: data.map(toDTO), pagination: { page: null, limit, total: null, totalPages: null, hasNext, nextCursor: hasNext ? encodeCursor(data[data.length - 1]) : null } }
    }
    const { rows, count } = await User.findAndCountAll({ include, order, limit, offset: (page - 1) * limit, distinct: true })
    const hasNext = page * limit < count
    return {
      data: rows.map(toDTO),
      pagination: { page, limit, total: count, totalPages: Math.ceil(count / limit), hasNext, nextCursor: hasNext && rows.length ? encodeCursor(rows[rows.length - 1]) : null }
    }
  },

  async create (data, actor, meta) {
    assertMayManage(actor, data)
    const email = data.email.toLowerCase()
    const problems = passwordProblems(data.password, email)
    if (problems.length) throw ValidationError('The password does not meet the policy', problems)
    const passwordHash = await password.hash(data.password)
    const id = await sequelize.transaction(async transaction => {
      const roles = await findRoles(data.roles ?? ['user'], transaction)
      const user = await User.create({ email, passwordHash, firstName: data.firstName, lastName: data.lastName, status: data.status ?? 'active' }, { transaction })
      if (data.profile) await UserProfile.create({ userId: user.id, ...data.profile }, { transaction })
      await user.setRoles(roles, { transaction })
      await queueVerification(user, transaction)
      await auditService.log('user.created', { userId: user.id, actorId: actor.id, changes: { email, firstName: data.firstName, lastName: data.lastName, roles: roles.map(r => r.name) }, meta }, transaction)
      return user.id
    })
    return this.getById(id)
  },

  async update (id, data, actor, ifMatch, meta) {
    assertMayManage(actor, data)
    await sequelize.transaction(async transaction => {
      const user = await User.findByPk(id, { transaction, lock: transaction.LOCK.UPDATE })
      if (!user) throw NotFoundError('User')
      if (ifMatch && ifMatch !== etagOf(toDTO(await this.getById(id, { transaction })))) throw PreconditionFailedError()
      const changes = {}
      for (const key of ['firstName', 'lastName', 'status']) if (data[key] !== undefined) changes[key] = data[key]
      if (data.email !== undefined && data.email.toLowerCase() !== user.email) {
        changes.email = data.email.toLowerCase()
        changes.emailVerified = false
      }
      user.set(changes)
      await user.save({ transaction })
      if (changes.email) await queueVerification(user, transaction)
      if (data.profile === null) await UserProfile.destroy({ where: { userId: id }, transaction })
      else if (data.profile) {
        const [profile] = await UserProfile.findOrCreate({ where: { userId: id }, transaction })
        await profile.update(data.profile, { transaction })
      }
      if (data.roles) await user.setRoles(await findRoles(data.roles, transaction), { transaction })
      await auditService.log('user.updated', { userId: id, actorId: actor.id, changes, meta }, transaction)
    })
    return this.getById(id)
  }
}

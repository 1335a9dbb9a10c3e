'use strict'
// The seed's tables: users, user_profiles, roles, user_roles, user_sessions, refresh_tokens,
// email_verification_tokens, email_outbox, user_audit_log.
const { DataTypes } = require('sequelize')
const sequelize = require('../db')

const User = sequelize.define('User', {
  id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
  email: { type: DataTypes.STRING(254), allowNull: false, unique: true },
  passwordHash: { type: DataTypes.STRING, allowNull: false },
  firstName: { type: DataTypes.STRING(100), allowNull: false },
  lastName: { type: DataTypes.STRING(100), allowNull: false },
  status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'active', validate: { isIn: [['active', 'suspended', 'pending']] } },
  emailVerified: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
  lastLoginAt: { type: DataTypes.DATE }
}, {
  tableName: 'users',
  underscored: true,
  paranoid: true,
  defaultScope: { attributes: { exclude: ['passwordHash'] } },
  scopes: { withPassword: { attributes: { include: ['passwordHash'] } } },
  indexes: [{ fields: ['created_at', 'id'] }]
})

const UserProfile = sequelize.define('UserProfile', {
  userId: { type: DataTypes.UUID, primaryKey: true },
  bio: { type: DataTypes.TEXT },
  avatarUrl: { type: DataTypes.STRING(2048) },
  phone: { type: DataTypes.STRING(32) },
  locale: { type: DataTypes.STRING(35) },
  timezone: { type: DataTypes.STRING(64) }
}, { tableName: 'user_profiles', underscored: true })

const Role = sequelize.define('Role', {
  id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
  name: { type: DataTypes.STRING(50), allowNull: false, unique: true },
  description: { type: DataTypes.STRING },
  permissions: { type: DataTypes.ARRAY(DataTypes.STRING), allowNull: false, defaultValue: [] }
}, { tableName: 'roles', underscored: true })

const UserRole = sequelize.define('UserRole', {}, { tableName: 'user_roles', underscored: true, timestamps: false })

const Session = sequelize.define('Session', {
  id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
  userId: { type: DataTypes.UUID, allowNull: false },
  userAgent: { type: DataTypes.STRING(512) },
  ip: { type: DataTypes.STRING(64) },
  lastUsedAt: { type: DataTypes.DATE },
  expiresAt: { type: DataTypes.DATE, allowNull: false },
  revokedAt: { type: DataTypes.DATE }
}, { tableName: 'user_sessions', underscored: true, indexes: [{ fields: ['user_id'] }] })

const RefreshToken = sequelize.define('RefreshToken', {
  id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
  tokenHash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
  sessionId: { type: DataTypes.UUID, allowNull: false },
  userId: { type: DataTypes.UUID, allowNull: false },
  expiresAt: { type: DataTypes.DATE, allowNull: false },
  spentAt: { type: DataTypes.DATE }
}, { tableName: 'refresh_tokens', underscored: true })

const EmailVerificationToken = sequelize.define('EmailVerificationToken', {
  id: { type: DataTypes.UUID, defaultValue: DataTypes.UUIDV4, primaryKey: true },
  userId: { type: DataTypes.UUID, allowNull: false },
  email: { type: DataTypes.STRING(254), allowNull: false },
  tokenHash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
  expiresAt: { type: DataTypes.DATE, allowNull: false },
  usedAt: { type: DataTypes.DATE }
}, { tableName: 'email_verification_tokens', underscored: true })

const EmailOutbox = sequelize.define('EmailOutbox', {
  id: { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true },
  toAddress: { type: DataTypes.STRING(254), allowNull: false },
  template: { type: DataTypes.STRING(32), allowNull: false },
  payload: { type: DataTypes.JSONB, allowNull: false },
  sentAt: { type: DataTypes.DATE }
}, { tableName: 'email_outbox', underscored: true, updatedAt: false })

const AuditLog = sequelize.define('AuditLog', {
  id: { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true },
  action: { type: DataTypes.STRING(64), allowNull: false },
  userId: { type: DataTypes.UUID },
  actorId: { type: DataTypes.UUID },
  changes: { type: DataTypes.JSONB },
  ip: { type: DataTypes.STRING(64) },
  userAgent: { type: DataTypes.STRING(512) },
  requestId: { type: DataTypes.STRING(128) }
}, { tableName: 'user_audit_log', underscored: true, updatedAt: false })

User.hasOne(UserProfile, { as: 'profile', foreignKey: 'userId' })
UserProfile.belongsTo(User, { foreignKey: 'userId' })
User.belongsToMany(Role, { through: UserRole, as: 'roles', foreignKey: 'userId', otherKey: 'roleId' })
Role.belongsToMany(User, { through: UserRole, as: 'users', foreignKey: 'roleId', otherKey: 'userId' })
User.hasMany(Session, { as: 'sessions', foreignKey: 'userId' })
Session.belongsTo(User, { as: 'user', foreignKey: 'userId' })
Session.hasMany(RefreshToken, { as: 'refreshTokens', foreignKey: 'sessionId' })
RefreshToken.belongsTo(Session, { as: 'session', foreignKey: 'sessionId' })
RefreshToken.belongsTo(User, { as: 'user', foreignKey: 'userId' })
EmailVerificationToken.belongsTo(User, { foreignKey: 'userId' })

module.exports = { sequelize, User, UserProfile, Role, UserRole, Session, RefreshToken, EmailVerificationToken, EmailOutbox, AuditLog }

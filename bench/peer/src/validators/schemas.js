'use strict'
const Joi = require('joi')

const name = Joi.string().min(1).max(100).pattern(/\S/)
const email = Joi.string().email({ tlds: false }).min(3).max(254)
const roles = Joi.array().items(Joi.string().min(1).max(50)).max(20).unique()
const status = Joi.string().valid('active', 'suspended', 'pending')
const nullableString = max => Joi.string().max(max).allow(null)
const profile = Joi.object({
  bio: nullableString(2000),
  avatarUrl: Joi.string().uri({ scheme: ['http', 'https'] }).max(2048).allow(null),
  phone: Joi.string().pattern(/^\+?[0-9 ().-]{3,32}$/).allow(null),
  locale: Joi.string().pattern(/^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$/).max(35).allow(null),
  timezone: Joi.string().pattern(/^[A-Za-z0-9_+./-]{1,64}$/).allow(null)
}).allow(null)

module.exports = {
  createUser: Joi.object({
    email: email.required(),
    password: Joi.string().min(1).max(1024).required(),
    firstName: name.required(),
    lastName: name.required(),
    roles,
    status,
    profile
  }),
  patchUser: Joi.object({ email, firstName: name, lastName: name, profile, roles, status }),
  listUsers: Joi.object({
    page: Joi.number().integer().min(1).max(1000000).default(1),
    limit: Joi.number().integer().min(1).max(100).default(20),
    cursor: Joi.string().max(1024),
    sort: Joi.string().valid('createdAt').default('createdAt')
  }),
  userId: Joi.object({ id: Joi.string().guid().required() }),
  login: Joi.object({ email: Joi.string().min(1).max(254).required(), password: Joi.string().min(1).max(1024).required() }),
  refresh: Joi.object({ refreshToken: Joi.string().min(1).max(1024).required() })
}

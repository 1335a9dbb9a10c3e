'use strict'
const userService = require('../services/userService')

const meta = req => ({ ip: req.ip, userAgent: req.get('user-agent'), requestId: req.id })

module.exports = {
  async getUser (req, res) {
    const user = userService.toDTO(await userService.getById(req.params.id))
    res.set('ETag', userService.etagOf(user)).set('Cache-Control', 'private, no-cache')
    res.json({ success: true, data: user })
  },
  async listUsers (req, res) {
    res.json({ success: true, ...await userService.list(req.validatedQuery) })
  },
  async createUser (req, res) {
    const user = userService.toDTO(await userService.create(req.body, req.user, meta(req)))
    res.status(201).location(`/api/v1/users/${user.id}`).set('ETag', userService.etagOf(user)).json({ success: true, data: user })
  },
  async updateUser (req, res) {
    const user = userService.toDTO(await userService.update(req.params.id, req.body, req.user, req.get('if-match'), meta(req)))
    res.set('ETag', userService.etagOf(user)).json({ success: true, data: user })
  }
}

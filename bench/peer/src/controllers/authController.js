'use strict'
const authService = require('../services/authService')

const meta = req => ({ ip: req.ip, userAgent: req.get('user-agent'), requestId: req.id })

module.exports = {
  async login (req, res) {
    res.set('Cache-Control', 'no-store').json({ success: true, data: await authService.login(req.body.email, req.body.password, meta(req)) })
  },
  async refresh (req, res) {
    res.set('Cache-Control', 'no-store').json({ success: true, data: await authService.refresh(req.body.refreshToken, meta(req)) })
  }
}

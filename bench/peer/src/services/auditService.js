'use strict'
const { AuditLog } = require('../models')

module.exports = {
  log: (action, { userId = null, actorId = null, changes = null, meta = {} }, transaction) =>
    AuditLog.create({ action, userId, actorId, changes, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId }, { transaction })
}

'use strict'
const { Router } = require('express')
const userController = require('../controllers/userController')
const { authenticate, authorize } = require('../middleware/authenticate')
const validate = require('../middleware/validate')
const schemas = require('../validators/schemas')

const router = Router()
router.use(authenticate)
router.get('/', authorize('users:read'), validate(schemas.listUsers, 'query'), userController.listUsers)
router.post('/', authorize('users:write'), validate(schemas.createUser), userController.createUser)
router.get('/:id', validate(schemas.userId, 'params'), authorize('users:read', { self: true }), userController.getUser)
router.patch('/:id', validate(schemas.userId, 'params'), authorize('users:write', { self: true }), validate(schemas.patchUser), userController.updateUser)

module.exports = router

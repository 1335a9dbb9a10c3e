'use strict'
const { Router } = require('express')
const authController = require('../controllers/authController')
const validate = require('../middleware/validate')
const schemas = require('../validators/schemas')

const router = Router()
router.post('/login', validate(schemas.login), authController.login)
router.post('/refresh', validate(schemas.refresh), authController.refresh)

module.exports = router

import { createHash, createHmac, createSign, randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { PASSWORD, uniqueEmail } from './helper.js'

/** Helpers shared by the test/auth-*.test.ts files. */

export const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

/** The error envelope, without its requestId, for comparing two answers. */
export function errorWithoutRequestId (res: LightMyRequestResponse) {
  const error = { ...res.json().error }
  delete error.requestId
  return error
}

/** Registers over HTTP and returns the user and the raw verification token from the outbox. */
export async function register (app: FastifyInstance, body: Partial<{ email: string, password: string, firstName: string, lastName: string }> = {}) {
  const email = body.email ?? uniqueEmail('reg')
  const payload = { email, password: PASSWORD, firstName: 'Reg', lastName: 'Istered', ...body }
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  const user = res.json().data
  const token = await outboxToken(app, user.email, 'verify_email')
  return { user, email: user.email as string, password: payload.password, verifyToken: token }
}

export async function login (app: FastifyInstance, email: string, password = PASSWORD, userAgent = 'tap') {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password }, headers: { 'user-agent': userAgent } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  const data = res.json().data
  return { token: data.accessToken as string, refreshToken: data.refreshToken as string, body: res.json() }
}

export function outboxRows (app: FastifyInstance, to: string, template: 'verify_email' | 'password_reset' | 'invitation') {
  return app.database.db.selectFrom('emailOutbox').select(['id', 'payload', 'createdAt'])
    .where('toAddress', '=', to.toLowerCase()).where('template', '=', template)
    .orderBy('createdAt', 'desc').orderBy('id', 'desc').execute()
}

/** The raw token of the newest email of that template to that address. */
export async function outboxToken (app: FastifyInstance, to: string, template: 'verify_email' | 'password_reset' | 'invitation') {
  const rows = await outboxRows(app, to, template)
  const token = (rows[0]?.payload as { token?: string } | undefined)?.token
  if (!token) throw new Error(`no ${template} email to ${to}`)
  return token
}

export function auditRows (app: FastifyInstance, userId: string, action: string) {
  return app.database.db.selectFrom('userAuditLog').selectAll()
    .where('userId', '=', userId).where('action', '=', action)
    .orderBy('createdAt', 'asc').execute()
}

export const refresh = (app: FastifyInstance, refreshToken: string) =>
  app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } })

export const me = (app: FastifyInstance, token: string) =>
  app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { authorization: `Bearer ${token}` } })

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A JWT built by hand, so a test can forge any header, claim or signature. */
export function forgeJwt (header: Record<string, unknown>, payload: Record<string, unknown>, key?: { hmac: string, alg: 'sha256' | 'sha512' } | { rsaPrivateKey: string }) {
  const input = `${b64(header)}.${b64(payload)}`
  if (!key) return `${input}.`
  const signature = 'hmac' in key
    ? createHmac(key.alg, key.hmac).update(input).digest('base64url')
    : createSign('RSA-SHA256').update(input).sign(key.rsaPrivateKey, 'base64url')
  return `${input}.${signature}`
}

export const randomId = () => randomUUID()

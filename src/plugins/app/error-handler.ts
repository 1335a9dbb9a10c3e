import fp from 'fastify-plugin'
import FindMyWay from 'find-my-way'
import { randomUUID } from 'node:crypto'
import { STATUS_CODES as HTTP_STATUS, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, fromDatabaseError, uriTooLong, validationError, type ErrorDetail } from '../../errors.js'
import { INVALID_REQUEST, validationDetails } from '../../lib/validation.js'

const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'PAYLOAD_TOO_LARGE'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'VALIDATION_ERROR'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'VALIDATION_ERROR'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'VALIDATION_ERROR'],
  FST_ERR_RATE_LIMIT_EXCEEDED: [429, 'RATE_LIMITED']
}
const STATUS_CODES: Record<number, string> = {
  400: 'VALIDATION_ERROR',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  412: 'PRECONDITION_FAILED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  503: 'SERVICE_UNAVAILABLE'
}

// The error a request refused by the router carries while it is routed again as an unknown path.
const kRouterError = Symbol('error of a URL the router refused')
type RoutedAgain = IncomingMessage & { [kRouterError]?: AppError, originalUrl?: string }

/**
 * Fastify's `frameworkErrors`: the router refuses a path with a malformed percent-encoding or a
 * segment over maxParamLength before any hook runs. Routing the request again as an unknown
 * path gives it what every answer gets (request id, security headers, CORS, the rate limit and
 * its headers, the log line) and lets the not-found handler answer it in the envelope.
 */
export function routeFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const raw = request.raw as RoutedAgain
  if (raw[kRouterError]) return sendError(reply, 500, 'INTERNAL_ERROR', 'An unexpected error occurred')
  raw[kRouterError] = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? uriTooLong()
    : error.code === 'FST_ERR_BAD_URL'
      ? validationError('The path is malformed (an invalid percent-encoding)', [{ field: 'path', message: 'is not a valid URL path' }])
      : new AppError(500, 'INTERNAL_ERROR', 'An unexpected error occurred')
  raw.originalUrl = raw.url
  // An unknown path under the API's prefix, so that the API's rate limit applies to it.
  raw.url = raw.url?.startsWith('/api/v1/') ? '/api/v1/' : '/'
  request.server.routing(raw, reply.raw)
}

/**
 * Fastify's `clientErrorHandler`: a request Node's parser refuses (headers over the size limit,
 * malformed HTTP, a request that took too long to arrive) never becomes a request; it still gets
 * the envelope and a request id, written straight to the socket as Fastify's default does.
 */
export function answerClientError (this: { log: { debug: (o: object, m: string) => void } }, err: Error & { code?: string }, socket: Socket) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code, message] = err.code === 'HPE_HEADER_OVERFLOW'
    ? [431, 'HEADERS_TOO_LARGE', 'The request headers are larger than the server accepts']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'The request took too long to arrive']
      : [400, 'VALIDATION_ERROR', 'The request is not valid HTTP']
  const requestId = randomUUID()
  this.log.debug({ err, requestId }, 'client error')
  const body = JSON.stringify({ success: false, error: { code, message, requestId } })
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${HTTP_STATUS[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy(err)
}

export function sendError (reply: FastifyReply, statusCode: number, code: string, message: string, details?: ErrorDetail[]) {
  return reply.code(statusCode).type('application/json; charset=utf-8').send({
    success: false,
    error: { code, message, ...(details?.length ? { details } : {}), requestId: reply.request.id }
  })
}

/** Renders every failure, once, in the contract's error envelope; 5xx detail is logged, never sent. */
export default fp(async function errorHandler (fastify) {
  // Which methods each path answers, for 405 + Allow on a known path.
  const methodsByPath = FindMyWay({ ignoreTrailingSlash: true })
  const knownMethods = new Set<string>()
  fastify.addHook('onRoute', route => {
    // A catch-all (@fastify/cors answers preflights on OPTIONS *) would make every unknown path a 405.
    if (route.url === '*' || route.url.endsWith('/*')) return
    for (const method of [route.method].flat()) {
      knownMethods.add(method)
      try { methodsByPath.on(method as any, route.url, () => {}) } catch { /* registered twice: fine */ }
    }
  })

  fastify.setErrorHandler(function (err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (err instanceof AppError) {
      if (err.headers) reply.headers(err.headers)
      return sendError(reply, err.statusCode, err.code, err.message, err.details)
    }
    if (err.validation) {
      return sendError(reply, 400, 'VALIDATION_ERROR', INVALID_REQUEST, validationDetails(err.validation, err.validationContext))
    }
    const mapped = err.code ? FASTIFY_CODES[err.code] : undefined
    if (mapped) return sendError(reply, mapped[0], mapped[1], err.message)
    const fromDb = fromDatabaseError(err)
    if (fromDb) {
      request.log.info({ err }, 'database rejected the request')
      if (fromDb.headers) reply.headers(fromDb.headers)
      return sendError(reply, fromDb.statusCode, fromDb.code, fromDb.message, fromDb.details)
    }
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      if (status === 429) reply.header('retry-after', reply.getHeader('retry-after') ?? '60')
      return sendError(reply, status, STATUS_CODES[status] ?? 'VALIDATION_ERROR', err.message)
    }
    request.log.error({ err }, 'request failed')
    if (status === 503) {
      reply.header('retry-after', reply.getHeader('retry-after') ?? '5')
      return sendError(reply, 503, 'SERVICE_UNAVAILABLE', 'A dependency is unavailable, try again shortly')
    }
    return sendError(reply, 500, 'INTERNAL_ERROR', 'An unexpected error occurred')
  })

  fastify.setNotFoundHandler(function (request, reply) {
    const refused = (request.raw as RoutedAgain)[kRouterError]
    if (refused) throw refused
    const path = request.url.split('?')[0]
    const allowed = [...knownMethods].filter(m => m !== request.method && methodsByPath.find(m as any, path))
    if (allowed.length > 0) {
      reply.header('allow', allowed.sort().join(', '))
      return sendError(reply, 405, 'METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}`)
    }
    return sendError(reply, 404, 'NOT_FOUND', `Route ${request.method} ${path} not found`)
  })
}, { name: 'error-handler' })

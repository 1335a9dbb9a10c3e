import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { serviceUnavailable } from '../../errors.js'

const RETRY_AFTER_SEC = 5

/**
 * Sheds load with @fastify/under-pressure: while the event loop's mean delay is over
 * MAX_EVENT_LOOP_DELAY or the heap over MAX_HEAP_USED_BYTES, requests are 503 with Retry-After,
 * in the envelope, before any work. Liveness (/health) keeps answering: a busy process is alive.
 */
export default fp(async function overload (fastify) {
  const { maxEventLoopDelayMs, maxHeapUsedBytes } = fastify.config
  if (maxEventLoopDelayMs === 0 && maxHeapUsedBytes === 0) return
  await fastify.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxHeapUsedBytes,
    pressureHandler: async request => {
      if (request.routeOptions.url === '/health') return
      throw serviceUnavailable('The server is overloaded, try again shortly', undefined, RETRY_AFTER_SEC)
    }
  })
}, { name: 'overload', dependencies: ['config'] })

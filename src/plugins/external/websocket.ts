import fp from 'fastify-plugin'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'

// A client sends nothing but control frames on the event stream: a small message limit.
const MAX_PAYLOAD_BYTES = 4096
// A client that does not answer the close handshake is cut after this, so closing never waits on it.
const CLOSE_GRACE_MS = 1000

/**
 * WebSocket routes (`wsHandler`, see src/routes/events.ts). On shutdown every socket is closed
 * with 1001 (going away: reconnect elsewhere) and cut if it does not answer within a second;
 * the library's own preClose would close without a code and wait up to 30 s on a silent client.
 */
export default fp(async function websocket (fastify) {
  await fastify.register(fastifyWebsocket, {
    options: { maxPayload: MAX_PAYLOAD_BYTES },
    preClose (this: FastifyInstance, done: () => void) {
      const server = this.websocketServer
      for (const client of server.clients) {
        client.close(1001, 'The server is shutting down')
        setTimeout(() => client.terminate(), CLOSE_GRACE_MS).unref()
      }
      server.close()
      done()
    }
  })
}, { name: 'websocket' })

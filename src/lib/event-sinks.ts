import type { ServerResponse } from 'node:http'
import type { WebSocket } from 'ws'
import type { EventSink } from './event-hub.js'

/**
 * The two connections an event stream goes out on. The SSE framing is written here by hand
 * (five lines): the stream needs its byte bound checked before every write, heartbeats
 * included, and @fastify/sse 0.x waits for 'drain' per message instead, with no bound.
 */

// Once ended, a stream's connection has nothing else to carry (an EventSource opens a new one to resume).
export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'close',
  // nginx and similar proxies would otherwise hold events back to fill their buffers.
  'x-accel-buffering': 'no'
}

// What a closing connection gets to take its last bytes (or, on a WebSocket, to answer the close handshake).
const CLOSE_GRACE_MS = 1000

function whenDrained (emitter: NodeJS.EventEmitter, pending: () => boolean, event: string) {
  return new Promise<void>(resolve => {
    if (!pending()) return resolve()
    const done = () => {
      emitter.off(event, done)
      emitter.off('close', done)
      resolve()
    }
    emitter.on(event, done)
    emitter.on('close', done)
  })
}

/** Server-Sent Events on a response whose head is already written: `id`, `event`, one-line JSON `data` (JSON.stringify never breaks lines). */
export function sseSink (res: ServerResponse): EventSink {
  return {
    // The response's own buffer plus its socket's: what the client has not read yet.
    buffered: () => res.writableLength,
    send ({ id, type, json }) { res.write(`id: ${id}\nevent: ${type}\ndata: ${json}\n\n`) },
    heartbeat () { res.write(': heartbeat\n\n') },
    drained: () => whenDrained(res, () => res.writableLength > 0 && !res.destroyed, 'drain'),
    close () {
      // A client that stopped reading (or never closes its side) must not hold the socket, and shutdown with it.
      res.end(() => res.destroy())
      setTimeout(() => res.destroy(), CLOSE_GRACE_MS).unref()
    },
    drop () { res.destroy() }
  }
}
const DRAIN_POLL_MS = 20

// 1001 going away: the server shuts down (reconnect elsewhere); 1008 policy violation: the login ended.
const CLOSE_CODES = { shutdown: 1001, ended: 1008 }

/** One JSON text message per event; heartbeats are pings (browsers answer them without script). */
export function webSocketSink (socket: WebSocket): EventSink {
  return {
    buffered: () => socket.bufferedAmount,
    send ({ json }) { socket.send(json) },
    heartbeat () { socket.ping() },
    // ws has no 'drain' of its own: look at its buffer until it empties or the socket goes.
    drained: () => new Promise<void>(resolve => {
      const check = () => {
        if (socket.bufferedAmount === 0 || socket.readyState !== socket.OPEN) resolve()
        else setTimeout(check, DRAIN_POLL_MS).unref()
      }
      check()
    }),
    close (reason) {
      socket.close(CLOSE_CODES[reason])
      setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref()
    },
    drop () { socket.terminate() }
  }
}

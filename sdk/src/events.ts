import { createParser } from 'eventsource-parser'
import { ApiError } from './errors.js'
import { sleep, type Fetch } from './retry.js'
import type { components } from './schema.js'

/** One event of GET /api/v1/events: every audit action is one. */
export type Event = components['schemas']['Event']

export interface EventStreamOptions {
  /** Only events of these types (audit actions, e.g. user.updated). */
  types?: string[]
  /** Start after this event (within 24 h): what came since is sent first. */
  lastEventId?: string
  /** Aborting ends the iteration. */
  signal?: AbortSignal
  /** After a dropped connection, connect again and resume after the last event seen (default true). A refusal (4xx, 5xx) is thrown instead. */
  reconnect?: boolean
  /** The wait before reconnecting (default 1000 ms; the server's `retry:` field replaces it). */
  retryDelayMs?: number
}

/**
 * The event stream as an async iterator, read with fetch (so the access token goes in the
 * Authorization header, refreshed when it expires) and parsed by eventsource-parser. A dropped
 * connection is resumed with Last-Event-ID, so no event is lost or repeated across reconnects
 * (within the server's 24 h); breaking out of the loop closes the connection.
 */
export async function * streamEvents (fetch: Fetch, baseUrl: string, options: EventStreamOptions = {}): AsyncGenerator<Event> {
  const { signal, types, reconnect = true } = options
  let lastEventId = options.lastEventId
  let retryMs = options.retryDelayMs ?? 1000
  const url = new URL('/api/v1/events', baseUrl)
  if (types?.length) url.searchParams.set('types', types.join(','))
  while (!signal?.aborted) {
    const headers = new Headers({ accept: 'text/event-stream' })
    if (lastEventId) headers.set('last-event-id', lastEventId)
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
    try {
      const response = await fetch(new Request(url, { headers, signal }))
      if (!response.ok || !response.body) throw await ApiError.from(response)
      const received: Event[] = []
      const parser = createParser({
        onEvent (message) {
          if (message.id) lastEventId = message.id
          received.push(JSON.parse(message.data) as Event)
        },
        onRetry (ms) { retryMs = ms }
      })
      const decoder = new TextDecoder()
      reader = response.body.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        parser.feed(decoder.decode(value, { stream: true }))
        while (received.length > 0) yield received.shift()!
      }
    } catch (err) {
      if (signal?.aborted) return
      // The service refused (expired resume point, revoked login...): connecting again would not help.
      if (err instanceof ApiError || !reconnect) throw err
    } finally {
      reader?.cancel().catch(() => {})
    }
    if (!reconnect) return
    try {
      await sleep(retryMs, signal ?? null)
    } catch {
      return
    }
  }
}

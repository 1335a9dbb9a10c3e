/**
 * The live event streams of this instance (SSE responses, WebSockets) and the fan-out to them.
 * Each event is serialized once and handed to every subscriber; each subscriber delivers in
 * order, through its own checks (admit), to its connection (a sink). Nothing is buffered without
 * bound: a subscriber whose connection holds more than maxBufferBytes unsent, or whose queue of
 * events not yet checked is over maxQueued, is dropped (its client resumes with Last-Event-ID).
 */

/** One event as it travels: its id and the JSON every subscriber sends. */
export interface Published<E> { event: E, id: string, json: string }

/** What a subscriber writes to: an SSE response or a WebSocket. */
export interface EventSink {
  /** Bytes accepted but not yet taken by the client's connection. */
  buffered (): number
  send (item: Published<unknown> & { type: string }): void
  heartbeat (): void
  /** Resolves once the connection has taken what it holds (or is gone). */
  drained (): Promise<void>
  /** Ends the stream in order: the server shuts down, or the login ended. */
  close (reason: CloseReason): void
  /** Cuts the connection at once (a client too slow to keep up). */
  drop (): void
}

export type Verdict = 'deliver' | 'skip' | 'end'
export type CloseReason = 'shutdown' | 'ended'

export interface SubscriberOptions<E> {
  sink: EventSink
  typeOf (event: E): string
  /** Per event: send it, skip it (not the viewer's to see), or end the stream (the login ended). */
  admit (event: E): Promise<Verdict>
  /** At each heartbeat: false ends the stream. */
  stillAllowed (): Promise<boolean>
  heartbeatMs: number
  maxBufferBytes: number
  maxQueued: number
  onError (err: unknown): void
}

// Ids of replayed events kept to skip their live copies (an event committed while the replay ran arrives both ways).
const MAX_REPLAYED_IDS = 10_000

export class Subscriber<E> {
  private readonly queue: Array<Published<E>> = []
  private readonly replayed = new Set<string>()
  private running = false
  private replaying = false
  private ended = false
  private readonly timer: NodeJS.Timeout
  private readonly gone: Array<() => void> = []

  constructor (private readonly options: SubscriberOptions<E>) {
    this.timer = setInterval(() => this.beat(), options.heartbeatMs).unref()
  }

  get closed () { return this.ended }

  onEnd (listener: () => void) { this.gone.push(listener) }

  /** A live event: queued behind the ones still being checked. */
  push (item: Published<E>) {
    if (this.ended) return
    if (this.queue.length >= this.options.maxQueued) return this.end('drop')
    this.queue.push(item)
    if (!this.running && !this.replaying) this.run().catch(this.options.onError)
  }

  /** Sends the pages of a resume first; live events wait behind them. A page is fetched only once the connection took the last one. */
  async replay (pages: AsyncIterable<Array<Published<E>>>) {
    this.replaying = true
    try {
      for await (const page of pages) {
        for (const item of page) {
          if (this.ended) return
          if (this.replayed.size >= MAX_REPLAYED_IDS) this.replayed.delete(this.replayed.values().next().value!)
          this.replayed.add(item.id)
          if (await this.deliver(item) === 'end') return
        }
        if (this.options.sink.buffered() > 0) await this.options.sink.drained()
      }
    } catch (err) {
      this.options.onError(err)
      this.end('drop')
    } finally {
      this.replaying = false
    }
    if (!this.ended) this.run().catch(this.options.onError)
  }

  /** Ends the stream in order (shutdown, the login ended) or at once (too slow). */
  end (how: CloseReason | 'drop') {
    if (this.ended) return
    this.ended = true
    clearInterval(this.timer)
    this.queue.length = 0
    if (how === 'drop') this.options.sink.drop()
    else this.options.sink.close(how)
    for (const listener of this.gone.splice(0)) listener()
  }

  private async run () {
    this.running = true
    try {
      while (this.queue.length > 0 && !this.ended) {
        const item = this.queue.shift()!
        if (this.replayed.has(item.id)) continue
        if (await this.deliver(item) === 'end') return
      }
    } catch (err) {
      this.options.onError(err)
      this.end('drop')
    } finally {
      this.running = false
    }
  }

  private async deliver (item: Published<E>): Promise<Verdict> {
    const verdict = await this.options.admit(item.event)
    if (this.ended) return 'end'
    if (verdict === 'end') {
      this.end('ended')
      return 'end'
    }
    if (verdict === 'skip') return 'skip'
    if (this.options.sink.buffered() > this.options.maxBufferBytes) {
      this.end('drop')
      return 'end'
    }
    this.options.sink.send({ ...item, type: this.options.typeOf(item.event) })
    return 'deliver'
  }

  private beat () {
    if (this.options.sink.buffered() > this.options.maxBufferBytes) return this.end('drop')
    this.options.stillAllowed().then(allowed => {
      if (this.ended) return
      if (allowed) this.options.sink.heartbeat()
      else this.end('ended')
    }, err => {
      this.options.onError(err)
      this.end('drop')
    })
  }
}

/** This instance's subscribers: publish hands an event to each; closeAll ends them all (shutdown). */
export function createEventHub<E> () {
  const subscribers = new Set<Subscriber<E>>()
  return {
    add (subscriber: Subscriber<E>) {
      subscribers.add(subscriber)
      subscriber.onEnd(() => subscribers.delete(subscriber))
    },
    publish (item: Published<E>) {
      for (const subscriber of subscribers) subscriber.push(item)
    },
    closeAll () {
      for (const subscriber of [...subscribers]) subscriber.end('shutdown')
    },
    get size () { return subscribers.size }
  }
}

export type EventHub<E> = ReturnType<typeof createEventHub<E>>

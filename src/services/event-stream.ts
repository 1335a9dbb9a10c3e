import type { DB } from '../db/connect.js'
import { unauthorized, validationError } from '../errors.js'
import { hashToken, randomToken } from '../lib/tokens.js'
import type { TtlCache } from '../lib/ttl-cache.js'
import { listEventsByIds } from '../repositories/events.js'
import type { Event } from '../../schemas/event.js'
import type { AuthStateService } from './auth-state.js'
import type { Actor } from './context.js'
import { toEvent, type EventsService } from './events.js'

/** How far back Last-Event-ID resumes (CONTRACT.md). */
export const RESUME_WINDOW_MS = 24 * 60 * 60 * 1000
const RESUME_PAGE = 200

/** Whose stream it is: the login it was opened with, checked again while it runs. */
export interface Viewer { userId: string, sessionId: string }

/** An event as streamed, with its position in the table (resume and catch-up order by it). */
export interface StreamEvent { event: Event, seq: string }

export interface EventStreamServiceOptions {
  db: DB
  events: EventsService
  authStates: AuthStateService
  /** Shared by every instance (Redis), so a ticket made on one works on another. */
  tickets: TtlCache<Viewer>
  ticketTtlSec: number
  now?: () => number
}

/** Who may see which event, tickets for browsers, and the events a stream sends (live by id, or after a given one). */
export function createEventStreamService ({ db, events, authStates, tickets, ticketTtlSec, now = () => Date.now() }: EventStreamServiceOptions) {
  return {
    /** A single-use ticket standing for the caller's login; stored only as its hash. */
    async issueTicket (actor: Actor): Promise<{ ticket: string, expiresIn: number }> {
      if (!actor.sessionId) throw unauthorized()
      const ticket = randomToken()
      await tickets.set(hashToken(ticket), { userId: actor.id, sessionId: actor.sessionId }, ticketTtlSec)
      return { ticket, expiresIn: ticketTtlSec }
    },

    /** The login a ticket stands for, if it is still live; the ticket is spent either way. */
    async redeemTicket (ticket: string): Promise<Actor> {
      const viewer = await tickets.take(hashToken(ticket))
      if (!viewer) throw unauthorized('The ticket is unknown, spent or expired')
      return authStates.actorOf(viewer.userId, viewer.sessionId)
    },

    /** The viewer with its permissions as they are now, or null once its login ended (logout, suspension, deletion). */
    async currentActor (viewer: Viewer): Promise<Actor | null> {
      try {
        return await authStates.actorOf(viewer.userId, viewer.sessionId)
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 401) return null
        throw err
      }
    },

    /** users:read sees every event; anyone else only the events about itself. */
    visibleTo (actor: Actor, event: Event): boolean {
      return actor.permissions.has('users:read') || event.data.userId === actor.id
    },

    /** The live events that notifications named, in table order. */
    async byIds (ids: string[]): Promise<StreamEvent[]> {
      if (ids.length === 0) return []
      return (await listEventsByIds(db, ids)).map(row => ({ seq: String(row.seq), event: toEvent(row) }))
    },

    /** Where a resume starts: 400 when the event is unknown or older than the resume window. */
    async resumePoint (lastEventId: string): Promise<string> {
      const found = await events.find(lastEventId)
      if (!found || Date.parse(found.event.createdAt) < now() - RESUME_WINDOW_MS) {
        throw validationError('Last-Event-ID names no event of the last 24 h; reconnect without it', [
          { field: 'Last-Event-ID', message: 'is unknown or older than 24 h' }
        ])
      }
      return found.seq
    },

    /** The events after a position, page by page, oldest first (all newer than the resume point, so within the window). */
    async * after (seq: string, types: string[] | null): AsyncGenerator<StreamEvent[]> {
      let position = seq
      for (;;) {
        const page = await events.after(position, RESUME_PAGE, types ? { types } : {})
        if (page.length > 0) yield page
        if (page.length < RESUME_PAGE) return
        position = page[page.length - 1].seq
      }
    }
  }
}

export type EventStreamService = ReturnType<typeof createEventStreamService>

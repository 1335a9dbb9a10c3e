import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The client's X-Request-Id when it is well-formed, otherwise a new one. */
export function requestIdOf (req: IncomingMessage): string {
  const sent = req.headers['x-request-id']
  return typeof sent === 'string' && CLIENT_ID.test(sent) ? sent : randomUUID()
}

import { createHash } from 'node:crypto'

/** A strong ETag over the representation: any visible change gives a new one. */
export function etagOf (representation: unknown): string {
  return `"${createHash('sha1').update(JSON.stringify(representation)).digest('base64url')}"`
}

/** Whether an If-Match / If-None-Match header value names this ETag ("*" names any). */
export function etagMatches (header: string | undefined, etag: string): boolean {
  if (!header) return false
  return header.split(',').some(part => {
    const tag = part.trim()
    return tag === '*' || tag === etag || tag === `W/${etag}`
  })
}

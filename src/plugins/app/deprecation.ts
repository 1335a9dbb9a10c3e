import fp from 'fastify-plugin'
import type { onSendHookHandler } from 'fastify'
import '../../lib/route-config.js'

/**
 * Deprecated operations (a route's `config.deprecated`): every answer says so in `Deprecation`
 * (`@<Unix time>` of `since`, RFC 9745) and `Sunset` (the HTTP date of `sunset`, RFC 8594), and
 * the route's schema is marked `deprecated`, which the OpenAPI document shows. Read once, when
 * the route is added; a route without it gets no hook.
 */
export default fp(async function deprecation (fastify) {
  fastify.addHook('onRoute', route => {
    const deprecated = route.config?.deprecated
    if (!deprecated) return
    const since = Date.parse(deprecated.since)
    const sunset = Date.parse(deprecated.sunset)
    if (Number.isNaN(since) || Number.isNaN(sunset)) throw new Error(`${route.method} ${route.url}: config.deprecated needs ISO dates`)
    route.schema = { ...route.schema, deprecated: true }
    const headers = { deprecation: `@${Math.floor(since / 1000)}`, sunset: new Date(sunset).toUTCString() }
    const addHeaders: onSendHookHandler = (_request, reply, payload, done) => { reply.headers(headers); done(null, payload) }
    route.onSend = [...[route.onSend ?? []].flat(), addHeaders]
  })
}, { name: 'deprecation' })

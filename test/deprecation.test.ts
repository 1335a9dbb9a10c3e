import t from 'tap'
import { buildApp } from '../src/app.js'
import { testConfig } from './helper.js'

// CONTRACT.md "Operations": deprecated operations carry Deprecation and Sunset and are marked
// deprecated in the OpenAPI document. No operation of the API is deprecated yet, so the test
// declares one the way a route would (config.deprecated) beside one that is not.
t.test('a route declared deprecated answers Deprecation and Sunset and is deprecated in the document; others are not', async t => {
  const app = await buildApp(testConfig())
  t.teardown(() => app.close())
  await app.register(async f => {
    const schema = { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }
    f.get('/api/v1/test-old', { config: { deprecated: { since: '2026-12-01', sunset: '2027-06-01T00:00:00Z' } }, schema }, async () => ({ ok: true }))
    f.get('/api/v1/test-current', { schema }, async () => ({ ok: true }))
  })
  await app.ready()

  const old = await app.inject({ url: '/api/v1/test-old' })
  t.equal(old.statusCode, 200)
  t.equal(old.headers.deprecation, `@${Date.parse('2026-12-01') / 1000}`, 'Deprecation: the date it was deprecated, as RFC 9745 writes it')
  t.equal(old.headers.sunset, 'Tue, 01 Jun 2027 00:00:00 GMT', 'Sunset: an HTTP date (RFC 8594)')
  const current = await app.inject({ url: '/api/v1/test-current' })
  t.equal(current.headers.deprecation, undefined, 'a current operation has neither')
  t.equal(current.headers.sunset, undefined)

  const document = app.swagger() as { paths: Record<string, { get?: { deprecated?: boolean } }> }
  t.equal(document.paths['/api/v1/test-old']?.get?.deprecated, true, 'marked deprecated in the OpenAPI document')
  t.notOk(document.paths['/api/v1/test-current']?.get?.deprecated, 'the other is not')
})

t.test('config.deprecated without ISO dates stops the start', async t => {
  const app = await buildApp(testConfig())
  t.teardown(() => app.close())
  app.register(async f => {
    f.get('/api/v1/test-bad', { config: { deprecated: { since: 'soon', sunset: 'later' } } }, async () => ({}))
  })
  await t.rejects(async () => { await app.ready() }, /config.deprecated needs ISO dates/)
})

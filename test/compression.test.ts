import t from 'tap'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { as, build, createUser } from './helper.js'

const app = await build(t, { corsOrigins: ['https://app.example'] })
const admin = await createUser(app, { roles: ['admin'] })
for (let i = 0; i < 10; i++) await createUser(app)
const list = (encoding?: string) => as(app, admin, { method: 'GET', url: '/api/v1/users?limit=50', headers: encoding ? { 'accept-encoding': encoding } : {} })

t.test('an answer over 1 KiB is compressed with br or gzip when the client asks', async t => {
  const plain = await list()
  t.ok(plain.rawPayload.length > 1024, 'the list is over 1 KiB')
  t.notOk(plain.headers['content-encoding'], 'not compressed unasked')
  const br = await list('gzip, br')
  t.equal(br.headers['content-encoding'], 'br', 'br preferred')
  t.same(JSON.parse(brotliDecompressSync(br.rawPayload).toString()).data, plain.json().data, 'the same body')
  t.ok(br.rawPayload.length < plain.rawPayload.length / 2, 'smaller')
  const gzip = await list('gzip')
  t.equal(gzip.headers['content-encoding'], 'gzip')
  t.same(JSON.parse(gunzipSync(gzip.rawPayload).toString()).data, plain.json().data)
  t.notOk((await list('identity')).headers['content-encoding'], 'identity: as is')
  for (const res of [plain, br, gzip]) t.match(res.headers.vary, /accept-encoding/i, 'Vary: Accept-Encoding')
})

t.test('small answers are not compressed but still vary by encoding, Origin kept', async t => {
  const res = await as(app, admin, { method: 'GET', url: `/api/v1/users/${admin.id}`, headers: { 'accept-encoding': 'gzip', origin: 'https://app.example' } })
  t.ok(res.rawPayload.length < 1024)
  t.notOk(res.headers['content-encoding'], 'under 1 KiB: not compressed')
  t.equal(res.headers.vary, 'accept-encoding, Origin', 'both Vary entries')
  t.ok(res.json().success, 'plain JSON')
})

t.test('a compressed request body is not decompressed: it is not JSON', async t => {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: Buffer.from([0x1f, 0x8b, 0, 0]) })
  t.equal(res.statusCode, 400)
  t.equal(res.json().error.code, 'VALIDATION_ERROR')
})

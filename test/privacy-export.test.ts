import t from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { outboxToken } from './auth-helpers.js'

const app = await build(t)
const db = app.database.db
const admin = await createUser(app, { roles: ['admin'] })

t.test('the export holds consents, identities, passkeys (no key material) and invitations (no token); it is audited', async t => {
  // Invited by the admin, accepted: the invitation is received; one it sends itself later is sent.
  const email = uniqueEmail('exported')
  await as(app, admin, { method: 'POST', url: '/api/v1/invitations', payload: { email, firstName: 'Ex', lastName: 'Port' } })
  const accepted = await app.inject({ method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: await outboxToken(app, email, 'invitation'), password: PASSWORD } })
  t.equal(accepted.statusCode, 201)
  const { accessToken, user } = accepted.json().data
  const me = { token: accessToken }
  const id = user.id as string
  await db.insertInto('userRoles').values({ userId: id, roleId: (await db.selectFrom('roles').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow()).id }).execute()
  const invitee = uniqueEmail('invitee')
  const admin2 = await createUser(app, { roles: ['admin'] })
  // As an admin now (a new login picks up the role), it invites someone.
  const relogin = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } })
  const asAdmin = { token: relogin.json().data.accessToken }
  t.equal((await as(app, asAdmin, { method: 'POST', url: '/api/v1/invitations', payload: { email: invitee } })).statusCode, 201)

  await as(app, me, { method: 'PUT', url: `/api/v1/users/${id}/consents/terms`, payload: { granted: true, version: 'v1' } })
  await as(app, me, { method: 'PUT', url: `/api/v1/users/${id}/consents/terms`, payload: { granted: true, version: 'v2' } })
  const subject = `sub-${randomUUID()}`
  await db.insertInto('userIdentities').values({ userId: id, provider: 'acme', subject, email }).execute()
  const credentialId = randomBytes(16).toString('base64url')
  await db.insertInto('userPasskeys').values({
    userId: id, credentialId, publicKey: Buffer.from('secret-key-material'), signCount: 42, transports: ['usb', 'nfc'], name: 'My key', deviceType: 'singleDevice', backedUp: false
  }).execute()

  const res = await as(app, admin2, { method: 'GET', url: `/api/v1/users/${id}/export`, headers: { 'user-agent': 'exporter' } })
  t.equal(res.statusCode, 200)
  const data = res.json().data
  t.same(data.consents.map((c: { purpose: string, granted: boolean, version: string }) => [c.purpose, c.granted, c.version]), [['terms', true, 'v1'], ['terms', true, 'v2']], 'the consent history')
  t.match(data.identities, [{ id: String, provider: 'acme', subject, email, createdAt: String }], 'the linked identity')
  t.match(data.passkeys, [{ id: String, name: 'My key', transports: ['usb', 'nfc'], createdAt: String, lastUsedAt: null }], 'the passkey')
  t.same(Object.keys(data.passkeys[0]).sort(), ['createdAt', 'id', 'lastUsedAt', 'name', 'transports'], 'no key, credential id or counter')
  t.notOk(res.body.includes(credentialId), 'the credential id appears nowhere')
  t.notOk(res.body.includes(Buffer.from('secret-key-material').toString('base64')), 'nor the key')
  const byDirection = Object.fromEntries(data.invitations.map((i: { direction: string }) => [i.direction, i]))
  t.match(byDirection.received, { email, firstName: 'Ex', lastName: 'Port', roles: ['user'], acceptedAt: String, revokedAt: null }, 'the invitation it accepted')
  t.match(byDirection.sent, { email: invitee, acceptedAt: null }, 'the invitation it sent')
  t.notMatch(res.body, /tokenHash|token_hash|"token"/, 'no invitation token or hash')
  const hashes = await db.selectFrom('invitations').select('tokenHash').where('email', 'in', [email, invitee]).execute()
  for (const { tokenHash } of hashes) t.notOk(res.body.includes(tokenHash), 'no token hash value')

  const audit = await db.selectFrom('userAuditLog').select(['actorId', 'changes', 'userAgent']).where('userId', '=', id).where('action', '=', 'user.exported').execute()
  t.same(audit, [{ actorId: admin2.id, changes: null, userAgent: 'exporter' }], 'audited as user.exported: who, about whom, nothing else')
  t.equal((await as(app, me, { method: 'GET', url: `/api/v1/users/${id}/export` })).statusCode, 200, 'the user may export itself')
  t.equal((await db.selectFrom('userAuditLog').select('id').where('userId', '=', id).where('action', '=', 'user.exported').execute()).length, 2, 'each export is audited')
  const stranger = await createUser(app)
  t.equal((await as(app, stranger, { method: 'GET', url: `/api/v1/users/${id}/export` })).statusCode, 403, 'another user may not')
  t.equal((await db.selectFrom('userAuditLog').select('id').where('userId', '=', id).where('action', '=', 'user.exported').execute()).length, 2, 'a refused export is not audited')
})

import t from 'tap'
import { randomBytes, randomInt, randomUUID } from 'node:crypto'
import { as, build, createUser, PASSWORD, uniqueEmail } from './helper.js'
import { outboxToken } from './auth-helpers.js'
import { findTraces } from './pii-scan.js'

// Reads of other users are audited (user.viewed rows) and every event goes to a webhook: the
// erasure must leave nothing in those either.
// Keyless even when the suite runs with PII_ENCRYPTION_KEYS: the scan first finds the data in clear
// (so it works), then nothing after erasure; sealed storage is test/pii-encryption.test.ts's.
const app = await build(t, { accessAuditFlushMs: 20 }, { AUDIT_DATA_ACCESS: 'true', WEBHOOK_ALLOW_PRIVATE: 'true', PII_ENCRYPTION_KEYS: '' })
const db = app.database.db
const admin = await createUser(app, { roles: ['admin'] })

const octet = () => randomInt(100, 256)

/** A person with distinctive personal data, and the client (address, browser) it uses. */
function person (tag: string) {
  const id = randomUUID().slice(0, 8)
  return {
    email: uniqueEmail(`scan-${tag}`),
    firstName: `First${tag}${id}`,
    lastName: `Last${tag}${id}`,
    phone: `+1 555 ${randomInt(1000, 9999)} ${randomInt(1000, 9999)}`,
    bio: `Bio of ${tag} ${id}`,
    ip: `10.${octet()}.${octet()}.${octet()}`,
    userAgent: `ScanBrowser/${tag}-${id}`
  }
}
type Person = ReturnType<typeof person>
const needles = (p: Person) => [p.email, p.firstName, p.lastName, p.phone, p.bio, p.ip, p.userAgent]

/** A request as this person's client sends it. */
const from = (p: Person, token: string | undefined, options: Parameters<typeof as>[2]) =>
  as(app, token ? { token } : undefined, { ...options, remoteAddress: p.ip, headers: { 'user-agent': p.userAgent, ...options.headers } })

async function login (p: Person) {
  const res = await from(p, undefined, { method: 'POST', url: '/api/v1/auth/login', payload: { email: p.email, password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json().data as { accessToken: string, user: { id: string } }
}

/** What a user does that leaves its data around: a profile, consents, a failed login, an export, emails, a read by an admin. */
async function liveALife (p: Person, token: string, id: string) {
  await from(p, token, { method: 'PATCH', url: `/api/v1/users/${id}`, payload: { profile: { phone: p.phone, bio: p.bio } } })
  await from(p, token, { method: 'PUT', url: `/api/v1/users/${id}/consents/marketing`, payload: { granted: true, version: 'v1' } })
  await from(p, undefined, { method: 'POST', url: '/api/v1/auth/login', payload: { email: p.email, password: 'Wrong-password-1' } })
  await from(p, token, { method: 'POST', url: '/api/v1/auth/email/verify/resend' })
  t.equal((await from(p, token, { method: 'GET', url: `/api/v1/users/${id}/export` })).statusCode, 200)
  t.equal((await as(app, admin, { method: 'GET', url: `/api/v1/users/${id}` })).statusCode, 200)
  // A linked identity and a passkey (as the OIDC and WebAuthn flows store them).
  await db.insertInto('userIdentities').values({ userId: id, provider: 'scan', subject: `sub-${randomUUID()}`, email: p.email }).execute()
  const passkey = { credentialId: randomBytes(16).toString('base64url'), publicKey: Buffer.from(`key of ${p.firstName}`), name: `${p.firstName}'s phone` }
  await db.insertInto('userPasskeys').values({ userId: id, ...passkey, signCount: 1, transports: ['internal'], deviceType: 'singleDevice', backedUp: false }).execute()
}

t.test('after erasure no column of any table holds the personal data of the erased users', async t => {
  const hook = await as(app, admin, { method: 'POST', url: '/api/v1/webhooks', payload: { url: 'http://127.0.0.1:9/scan', events: ['*'] } })
  t.equal(hook.statusCode, 201, 'a webhook receives every event')

  // Registered, with an Idempotency-Key (its answer, which shows the user, is kept for replays).
  const a = person('a')
  const registered = await from(a, undefined, {
    method: 'POST',
    url: '/api/v1/auth/register',
    headers: { 'idempotency-key': `scan-${randomUUID()}` },
    payload: { email: a.email, password: PASSWORD, firstName: a.firstName, lastName: a.lastName, consents: { terms: 'v1' } }
  })
  t.equal(registered.statusCode, 201)
  const aLogin = await login(a)
  await liveALife(a, aLogin.accessToken, aLogin.user.id)

  // Invited by name, accepted.
  const b = person('b')
  t.equal((await as(app, admin, { method: 'POST', url: '/api/v1/invitations', payload: { email: b.email, firstName: b.firstName, lastName: b.lastName } })).statusCode, 201)
  const accepted = await from(b, undefined, { method: 'POST', url: '/api/v1/auth/invitations/accept', payload: { token: await outboxToken(app, b.email, 'invitation'), password: PASSWORD } })
  t.equal(accepted.statusCode, 201, 'the invitation is accepted')
  const bLogin = await login(b)
  await liveALife(b, bLogin.accessToken, bLogin.user.id)
  t.ok((await db.selectFrom('webhookDeliveries').select('id').where('webhookId', '=', hook.json().data.id).execute()).length > 10, 'deliveries were queued')

  const all = [...needles(a), ...needles(b), `key of ${a.firstName}`, `key of ${b.firstName}`]
  // The user.viewed rows are written in the background: wait for them, so the scan sees them.
  for (let i = 0; i < 200; i++) {
    const viewed = await db.selectFrom('userAuditLog').select('id').where('action', '=', 'user.viewed').where('userId', 'in', [aLogin.user.id, bLogin.user.id]).execute()
    if (viewed.length >= 2) break
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const before = await findTraces(db, all)
  const seen = (needle: string, table: string) => before.some(trace => trace.needle === needle && trace.table === table)
  // The scan itself works: it finds each kind of data where the API put it (text, jsonb, bytea).
  t.ok(seen(a.email, 'public.users'), 'before: the email in users')
  t.ok(seen(a.phone, 'public.user_profiles'), 'before: the phone in user_profiles')
  t.ok(seen(a.ip, 'public.user_sessions') && seen(a.userAgent, 'public.user_audit_log'), 'before: the ip and user agent')
  t.ok(seen(a.email, 'public.idempotency_keys'), 'before: the stored answer of the registration')
  t.ok(seen(b.firstName, 'public.invitations'), 'before: the invitation')
  t.ok(seen(b.email, 'public.events') && seen(a.lastName, 'public.events'), 'before: the events')
  t.ok(seen(`key of ${a.firstName}`, 'public.user_passkeys'), 'before: a bytea column')

  t.equal((await as(app, admin, { method: 'POST', url: `/api/v1/users/${aLogin.user.id}/erase` })).statusCode, 204, 'a is erased by an admin')
  t.equal((await from(b, bLogin.accessToken, { method: 'POST', url: `/api/v1/users/${bLogin.user.id}/erase` })).statusCode, 204, 'b erases itself')
  // A read buffered before the erasure and written after it must not bring anything back either.
  await new Promise(resolve => setTimeout(resolve, 100))

  const after = await findTraces(db, all)
  t.same(after, [], 'nothing of either user anywhere')
  const kept = await db.selectFrom('userAuditLog').select('action').where('userId', '=', aLogin.user.id).execute()
  for (const action of ['user.created', 'user.consent_changed', 'user.exported', 'user.viewed', 'user.erased']) {
    t.ok(kept.some(row => row.action === action), `the audit trail keeps ${action}`)
  }
  t.equal((await db.selectFrom('userConsents').select('seq').where('userId', 'in', [aLogin.user.id, bLogin.user.id]).execute()).length, 0, 'the consent rows are gone')
  // On a shared database a `*` webhook left behind would take a delivery of every other file's events.
  t.equal((await as(app, admin, { method: 'DELETE', url: `/api/v1/webhooks/${hook.json().data.id}` })).statusCode, 204, 'the webhook is removed')
})

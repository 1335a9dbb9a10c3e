import t from 'tap'
import { as, assertError, build, createUser, PASSWORD, uniqueEmail, type TestUser } from './helper.js'
import { auditRows, me, sha256 } from './auth-helpers.js'

t.test('invitations', async t => {
  const app = await build(t, {}, { TEST_ENDPOINTS: 'true', EMAIL_TRANSPORT: 'capture' })
  const admin = await createUser(app, { roles: ['admin'] })
  const invite = (caller: TestUser | undefined, payload: Record<string, unknown>) => as(app, caller, { method: 'POST', url: '/api/v1/invitations', payload })
  const accept = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/api/v1/auth/invitations/accept', payload })
  /** The invitation email as a test pipeline reads it (the capture transport's test endpoint). */
  async function invitationEmail (to: string) {
    const res = await as(app, admin, { method: 'GET', url: `/api/v1/test/emails?to=${encodeURIComponent(to)}` })
    const email = res.json().data.find((e: { template: string }) => e.template === 'invitation')
    if (!email) throw new Error(`no invitation email to ${to}`)
    return email as { subject: string, text: string, payload: { token: string } }
  }

  // A role with users:write but not roles:manage.
  const writerRole = await as(app, admin, { method: 'POST', url: '/api/v1/roles', payload: { name: `writer-${Date.now()}`, description: 'w', permissions: ['users:write', 'users:read'] } })
  const writer = await createUser(app, { roles: [writerRole.json().data.name] })
  const plain = await createUser(app)

  t.test('invite, read the email, accept: an active verified user, logged in, with the invited roles', async t => {
    const email = uniqueEmail('Invitee')
    const created = await invite(admin, { email, firstName: 'Ina', lastName: 'Vitee', roles: ['admin'] })
    t.equal(created.statusCode, 201, created.body)
    const invitation = created.json().data
    t.equal(invitation.email, email.toLowerCase())
    t.same(invitation.roles, ['admin'])
    const lifetime = Date.parse(invitation.expiresAt) - Date.parse(invitation.createdAt)
    t.ok(Math.abs(lifetime - 7 * 24 * 3600_000) < 5000, 'valid 7 days')
    t.notOk(JSON.stringify(created.json()).match(/token/i), 'the answer holds no token')

    const mail = await invitationEmail(email)
    t.ok(mail.text.includes(encodeURIComponent(mail.payload.token)), 'the email carries the link')
    const stored = await app.database.db.selectFrom('invitations').select('tokenHash').where('id', '=', invitation.id).executeTakeFirstOrThrow()
    t.equal(stored.tokenHash, sha256(mail.payload.token), 'only the hash is stored')

    const res = await accept({ token: mail.payload.token, password: PASSWORD })
    t.equal(res.statusCode, 201, res.body)
    const pair = res.json().data
    t.match(pair, { tokenType: 'Bearer', accessToken: String, refreshToken: String, expiresIn: Number })
    t.match(pair.user, { email: email.toLowerCase(), firstName: 'Ina', lastName: 'Vitee', status: 'active', emailVerified: true, roles: ['admin'] })
    t.equal((await me(app, pair.accessToken)).json().data.id, pair.user.id, 'the access token works')
    const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } })
    t.equal(login.statusCode, 200, 'and the password logs in')

    assertError(t, await accept({ token: mail.payload.token, password: PASSWORD }), 400, 'INVALID_TOKEN', 'single use')
    const listed = await as(app, admin, { method: 'GET', url: '/api/v1/invitations?limit=100' })
    t.notOk(listed.json().data.some((i: { id: string }) => i.id === invitation.id), 'no longer outstanding')

    t.equal((await auditRows(app, pair.user.id, 'invitation.accepted')).length, 1, 'audit: accepted')
    const createdRows = await app.database.db.selectFrom('userAuditLog').selectAll().where('action', '=', 'invitation.created')
      .where('actorId', '=', admin.id).execute()
    t.ok(createdRows.some(row => (row.changes as { invitationId?: string }).invitationId === invitation.id), 'audit: created, by the admin')
    const trail = JSON.stringify(await app.database.db.selectFrom('userAuditLog').select('changes').where('action', 'like', 'invitation.%').execute())
    t.notOk(trail.includes(mail.payload.token) || trail.includes(sha256(mail.payload.token)), 'no token in the audit trail')
  })

  t.test('names come from the accept body when the invitation has none; missing both is 400', async t => {
    const email = uniqueEmail('noname')
    t.equal((await invite(writer, { email })).statusCode, 201, 'users:write may invite with the default roles')
    const { payload: { token } } = await invitationEmail(email)
    const error = assertError(t, await accept({ token, password: PASSWORD }), 400, 'VALIDATION_ERROR', 'no name')
    t.same(error.details?.map(d => d.field), ['firstName', 'lastName'])
    assertError(t, await accept({ token, password: 'weak', firstName: 'A', lastName: 'B' }), 400, 'VALIDATION_ERROR', 'password policy')
    const res = await accept({ token, password: PASSWORD, firstName: 'Given', lastName: 'Later' })
    t.equal(res.statusCode, 201, 'the token survived the refusals')
    t.match(res.json().data.user, { firstName: 'Given', lastName: 'Later', roles: ['user'] })
  })

  t.test('permissions: users:write invites, roles need roles:manage, users:read lists', async t => {
    assertError(t, await invite(writer, { email: uniqueEmail(), roles: ['user'] }), 403, 'FORBIDDEN', 'roles without roles:manage')
    assertError(t, await invite(plain, { email: uniqueEmail() }), 403, 'FORBIDDEN', 'a plain user')
    assertError(t, await invite(undefined, { email: uniqueEmail() }), 401, 'UNAUTHORIZED', 'anonymous')
    assertError(t, await invite(admin, { email: uniqueEmail(), roles: ['no-such-role'] }), 400, 'VALIDATION_ERROR', 'unknown role')
    assertError(t, await invite(admin, { email: 'not-an-email' }), 400, 'VALIDATION_ERROR', 'bad email')
    assertError(t, await invite(admin, { email: uniqueEmail(), extra: 1 }), 400, 'VALIDATION_ERROR', 'unknown property')
    assertError(t, await as(app, plain, { method: 'GET', url: '/api/v1/invitations' }), 403, 'FORBIDDEN', 'list needs users:read')
    assertError(t, await as(app, plain, { method: 'DELETE', url: `/api/v1/invitations/${admin.id}` }), 403, 'FORBIDDEN', 'revoke needs users:write')
  })

  t.test('an email already taken is 409 EMAIL_TAKEN at invitation time, and at acceptance if taken meanwhile', async t => {
    assertError(t, await invite(admin, { email: plain.email.toUpperCase() }), 409, 'EMAIL_TAKEN', 'at invitation')
    const email = uniqueEmail('race')
    t.equal((await invite(admin, { email, firstName: 'R', lastName: 'A' })).statusCode, 201)
    const { payload: { token } } = await invitationEmail(email)
    await createUser(app, { email })
    assertError(t, await accept({ token, password: PASSWORD }), 409, 'EMAIL_TAKEN', 'at acceptance')
  })

  t.test('list (keyset paging), revoke, re-invite', async t => {
    const emails = [uniqueEmail('list'), uniqueEmail('list'), uniqueEmail('list')]
    const ids: string[] = []
    for (const email of emails) ids.push((await invite(admin, { email, firstName: 'L', lastName: 'I' })).json().data.id)
    const first = await as(app, admin, { method: 'GET', url: '/api/v1/invitations?limit=2' })
    t.equal(first.statusCode, 200)
    t.same(first.json().data.map((i: { id: string }) => i.id), [ids[2], ids[1]], 'newest first')
    t.equal(first.json().pagination.hasNext, true)
    const second = await as(app, admin, { method: 'GET', url: `/api/v1/invitations?limit=2&cursor=${first.json().pagination.nextCursor}` })
    t.equal(second.json().data[0].id, ids[0])
    assertError(t, await as(app, admin, { method: 'GET', url: '/api/v1/invitations?cursor=garbage' }), 400, 'VALIDATION_ERROR', 'bad cursor')

    const { payload: { token } } = await invitationEmail(emails[0])
    t.equal((await as(app, writer, { method: 'DELETE', url: `/api/v1/invitations/${ids[0]}` })).statusCode, 204)
    assertError(t, await accept({ token, password: PASSWORD }), 400, 'INVALID_TOKEN', 'a revoked invitation')
    assertError(t, await as(app, admin, { method: 'DELETE', url: `/api/v1/invitations/${ids[0]}` }), 404, 'NOT_FOUND', 'revoked twice')
    assertError(t, await as(app, admin, { method: 'DELETE', url: '/api/v1/invitations/not-a-uuid' }), 400, 'VALIDATION_ERROR', 'malformed id')
    t.ok((await app.database.db.selectFrom('userAuditLog').select('id').where('action', '=', 'invitation.revoked').where('actorId', '=', writer.id).execute()).length >= 1, 'audit: revoked')

    const { payload: { token: older } } = await invitationEmail(emails[1])
    t.equal((await invite(admin, { email: emails[1], firstName: 'L', lastName: 'I' })).statusCode, 201, 'invited again')
    assertError(t, await accept({ token: older, password: PASSWORD }), 400, 'INVALID_TOKEN', 'the earlier link is revoked')
    const { payload: { token: newer } } = await invitationEmail(emails[1])
    t.equal((await accept({ token: newer, password: PASSWORD })).statusCode, 201, 'the newest works')
  })

  t.test('expired and unknown tokens are 400 INVALID_TOKEN', async t => {
    const email = uniqueEmail('expired')
    const { id } = (await invite(admin, { email, firstName: 'E', lastName: 'X' })).json().data
    const { payload: { token } } = await invitationEmail(email)
    await app.database.db.updateTable('invitations').set({ expiresAt: new Date(Date.now() - 1000) }).where('id', '=', id).execute()
    assertError(t, await accept({ token, password: PASSWORD }), 400, 'INVALID_TOKEN', 'expired')
    assertError(t, await accept({ token: 'made-up', password: PASSWORD }), 400, 'INVALID_TOKEN', 'unknown')
  })

  t.test('two concurrent acceptances of one token: one user, one 201', async t => {
    const email = uniqueEmail('twice')
    await invite(admin, { email, firstName: 'T', lastName: 'W' })
    const { payload: { token } } = await invitationEmail(email)
    const answers = await Promise.all([accept({ token, password: PASSWORD }), accept({ token, password: PASSWORD })])
    t.same(answers.map(res => res.statusCode).sort(), [201, 400])
    const users = await app.database.db.selectFrom('users').select('id').where('email', '=', email).execute()
    t.equal(users.length, 1)
  })
})

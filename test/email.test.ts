import { createServer, type Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { build, testConfig, uniqueEmail } from './helper.js'

async function queue (app: FastifyInstance, template: 'verify_email' | 'password_reset' = 'verify_email') {
  const to = uniqueEmail('mail')
  const token = `tok-${randomUUID()}`
  await app.emailOutbox.queue(app.database.db, to, template, { token, userId: randomUUID() })
  return { to, token }
}

const row = (app: FastifyInstance, to: string) => app.database.db.selectFrom('emailOutbox')
  .select(['sentAt', 'attempts', 'lastError']).where('toAddress', '=', to).executeTakeFirstOrThrow()

t.test('log transport: rows get sent_at; the log names template and recipient, never the token', async t => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp(testConfig({}, { EMAIL_TRANSPORT: 'log' }), { logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.ready()

  const verify = await queue(app, 'verify_email')
  const reset = await queue(app, 'password_reset')
  t.same(await row(app, verify.to), { sentAt: null, attempts: 0, lastError: null }, 'queued, not sent')
  t.ok(await app.emailDelivery.deliverPending() >= 2, 'delivered at least these two')

  for (const { to, token } of [verify, reset]) {
    const sent = await row(app, to)
    t.ok(sent.sentAt instanceof Date, `${to}: sent_at is set`)
    t.equal(sent.attempts, 1)
    const logged = lines.filter(line => line.includes(to))
    t.equal(logged.length, 1, 'one log line for the email')
    t.notOk(lines.some(line => line.includes(token)), 'the token is in no log line')
  }
  t.match(lines.find(line => line.includes(verify.to)), /"template":"verify_email"/)
  t.match(lines.find(line => line.includes(reset.to)), /"template":"password_reset"/)

  t.equal(await app.emailDelivery.deliverPending() >= 0, true)
  t.equal((await row(app, verify.to)).attempts, 1, 'a sent email is not sent again')
})

/** Just enough of an SMTP server to take one message per connection and hand it over. */
function fakeSmtp (t: Test) {
  const messages: string[] = []
  const server = createServer((socket: Socket) => {
    let data: string | null = null
    socket.write('220 fake ESMTP\r\n')
    socket.on('data', chunk => {
      for (const line of String(chunk).split('\r\n').filter((l, i, all) => l !== '' || i < all.length - 1)) {
        if (data !== null) {
          if (line === '.') { messages.push(data); data = null; socket.write('250 queued\r\n') } else data += line + '\n'
          continue
        }
        const verb = line.slice(0, 4).toUpperCase()
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250 fake\r\n')
        else if (verb === 'DATA') { data = ''; socket.write('354 go on\r\n') } else if (verb === 'QUIT') socket.end('221 bye\r\n')
        else socket.write('250 ok\r\n')
      }
    })
  })
  t.teardown(() => server.close())
  return new Promise<{ port: number, messages: string[] }>(resolve => server.listen(0, '127.0.0.1', () => {
    resolve({ port: (server.address() as { port: number }).port, messages })
  }))
}

t.test('smtp transport: the email carries the link with its token', async t => {
  const smtp = await fakeSmtp(t)
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'smtp', SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, APP_URL: 'https://app.example.test/', EMAIL_FROM: 'accounts@example.test' })
  const { to, token } = await queue(app, 'password_reset')
  await app.emailDelivery.deliverPending()
  const sent = await row(app, to)
  t.ok(sent.sentAt instanceof Date, 'sent_at is set')
  const message = smtp.messages.find(m => m.includes(to))
  t.ok(message, 'the server got the message')
  t.match(message, /From: accounts@example\.test/)
  t.match(message, /Subject: Reset your password/)
  t.ok(message?.replace(/=\n/g, '').replace(/=3D/g, '=').includes(`https://app.example.test/reset-password?token=${token}`), 'the link with the token')
})

t.test('a failing transport counts attempts and keeps the error, without the token', async t => {
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'smtp', SMTP_URL: 'smtp://127.0.0.1:1' })
  const { to, token } = await queue(app)
  await app.emailDelivery.deliverPending()
  const failed = await row(app, to)
  t.equal(failed.sentAt, null, 'not sent')
  t.equal(failed.attempts, 1, 'one attempt counted')
  t.match(failed.lastError, /ECONNREFUSED|connect/i, 'the error is kept')
  t.notMatch(failed.lastError, token)
  await app.emailDelivery.deliverPending()
  t.equal((await row(app, to)).attempts, 1, 'not retried before its backoff')
})

t.test('the worker delivers on its own timer and stops on close', async t => {
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'log', EMAIL_POLL_INTERVAL: '50ms' })
  const { to } = await queue(app)
  let sent = await row(app, to)
  for (let i = 0; i < 200 && sent.sentAt === null; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    sent = await row(app, to)
  }
  t.ok(sent.sentAt instanceof Date, 'sent without anyone asking')
})

import { createServer, type Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { connectDatabase } from '../src/db/connect.js'
import { assertMigrated, createMigrator } from '../src/db/migrate.js'
import { createJobQueue } from '../src/jobs/job-queue.js'
import { SEND_EMAIL_JOB } from '../src/services/email.js'
import { build, testConfig, uniqueEmail } from './helper.js'

const row = (app: FastifyInstance, to: string) => app.database.db.selectFrom('emailOutbox')
  .select(['id', 'sentAt', 'attempts', 'lastError']).where('toAddress', '=', to).executeTakeFirst()

/** The delivery jobs of one outbox row (pg-boss's table, created by migration 004). */
async function jobsOf (app: FastifyInstance, emailId: string) {
  const { rows } = await sql<{ state: string, retryCount: number, startAfter: Date }>`
    select state, retry_count, start_after from pgboss.job where name = ${SEND_EMAIL_JOB} and data->>'emailId' = ${emailId}`
    .execute(app.database.db)
  return rows
}

function logLines () {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  return { lines, logger: { level: 'info', stream } }
}

t.test('a rolled-back change leaves no email and no job; a committed one leaves both', async t => {
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'log' })
  const db = app.database.db
  const attempt = async (commit: boolean) => {
    const to = uniqueEmail('tx')
    let emailId = ''
    await db.transaction().execute(async trx => {
      await app.emailOutbox.queue(trx, to, 'verify_email', { token: `tok-${randomUUID()}` })
      emailId = await app.emailOutbox.queue(trx, to, 'password_reset', { token: `tok-${randomUUID()}` })
      if (!commit) throw new Error('rolled back')
    }).catch(err => { if (commit || err.message !== 'rolled back') throw err })
    const rows = await db.selectFrom('emailOutbox').select('id').where('toAddress', '=', to).execute()
    return { rows, jobs: await jobsOf(app, emailId) }
  }
  const rolledBack = await attempt(false)
  t.same(rolledBack.rows, [], 'no outbox row')
  t.same(rolledBack.jobs, [], 'no job')
  const committed = await attempt(true)
  t.equal(committed.rows.length, 2, 'both outbox rows')
  t.equal(committed.jobs.length, 1, 'one job for the second email')
  t.equal(committed.jobs[0]?.state, 'created')
})

/**
 * An SMTP server that refuses the first message to `to` (451) and takes every other one (a
 * shared database may hold other tests' emails, delivered by the same run).
 */
function flakySmtp (t: Test, to: string) {
  const messages: string[] = []
  let refused = 0
  const server = createServer((socket: Socket) => {
    let data: string | null = null
    socket.write('220 fake ESMTP\r\n')
    socket.on('data', chunk => {
      for (const line of String(chunk).split('\r\n').filter((l, i, all) => l !== '' || i < all.length - 1)) {
        if (data !== null) {
          if (line === '.') {
            if (refused === 0 && data.includes(to)) { refused++; socket.write('451 try again later\r\n') } else { messages.push(data); socket.write('250 queued\r\n') }
            data = null
          } else data += line + '\n'
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

t.test('a failing transport is retried after its backoff, then the email is sent once', async t => {
  const to = uniqueEmail('retry')
  const smtp = await flakySmtp(t, to)
  const app = await build(t, {}, { EMAIL_TRANSPORT: 'smtp', SMTP_URL: `smtp://127.0.0.1:${smtp.port}` })
  await app.emailOutbox.queue(app.database.db, to, 'verify_email', { token: `tok-${randomUUID()}` })
  const queued = await row(app, to)
  if (!queued) throw new Error('not queued')

  await app.emailDelivery.deliverPending()
  const failed = await row(app, to)
  t.equal(failed?.sentAt, null, 'the first try failed')
  t.equal(failed?.attempts, 1)
  t.match(failed?.lastError, /451/, 'the server\'s answer is kept')
  const [job] = await jobsOf(app, queued.id)
  t.equal(job.state, 'retry', 'the job waits for its retry')
  const waitSec = (new Date(job.startAfter).getTime() - Date.now()) / 1000
  t.ok(waitSec > 20 && waitSec <= 60, `retried 30-60 s later (backoff), not at once: ${waitSec.toFixed(1)} s`)
  await app.emailDelivery.deliverPending()
  t.equal((await row(app, to))?.attempts, 1, 'not retried before its backoff')

  // The backoff has passed.
  await sql`update pgboss.job set start_after = now() - interval '1 second' where name = ${SEND_EMAIL_JOB} and data->>'emailId' = ${queued.id}`.execute(app.database.db)
  await app.emailDelivery.deliverPending()
  const sent = await row(app, to)
  t.ok(sent?.sentAt instanceof Date, 'sent on the second try')
  t.equal(sent?.attempts, 2)
  t.equal(sent?.lastError, null)
  t.equal(smtp.messages.filter(m => m.includes(to)).length, 1, 'the server took it once')
  t.equal((await jobsOf(app, queued.id))[0]?.state, 'completed')
  await app.emailDelivery.deliverPending()
  t.equal((await row(app, to))?.attempts, 2, 'a sent email is not sent again')
})

t.test('a job whose email was erased completes without sending', async t => {
  const log = logLines()
  const app = await buildApp(testConfig({}, { EMAIL_TRANSPORT: 'log' }), { logger: log.logger })
  t.teardown(() => app.close())
  await app.ready()
  const to = uniqueEmail('erased')
  const emailId = await app.emailOutbox.queue(app.database.db, to, 'verify_email', { token: `tok-${randomUUID()}` })
  // Erasure deletes the user's outbox rows (deletePersonalRecords); the job stays behind.
  await app.database.db.deleteFrom('emailOutbox').where('id', '=', emailId).execute()
  await app.emailDelivery.deliverPending()
  t.equal((await jobsOf(app, emailId))[0]?.state, 'completed')
  t.notOk(log.lines.some(line => line.includes('email delivered') && line.includes(to)), 'nothing was sent')
})

t.test('two instances on one database deliver each email once', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL: each embedded app has its own database' }, async t => {
  const logs = [logLines(), logLines()]
  const apps = await Promise.all(logs.map(({ logger }) => buildApp(testConfig({}, { EMAIL_TRANSPORT: 'log', EMAIL_POLL_INTERVAL: '20ms' }), { logger })))
  t.teardown(() => Promise.all(apps.map(app => app.close())))
  await Promise.all(apps.map(app => app.ready()))
  const addresses = Array.from({ length: 60 }, () => uniqueEmail('pair'))
  // Queued from both instances, delivered by both timers and by explicit runs racing them.
  await Promise.all(addresses.map((to, i) => apps[i % 2].emailOutbox.queue(apps[i % 2].database.db, to, 'verify_email', { token: `tok-${randomUUID()}` })))
  await Promise.all([...apps, ...apps].map(app => app.emailDelivery.deliverPending()))
  for (let i = 0; i < 200; i++) {
    const unsent = await apps[0].database.db.selectFrom('emailOutbox').select('id').where('toAddress', 'in', addresses).where('sentAt', 'is', null).execute()
    if (unsent.length === 0) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const rows = await apps[0].database.db.selectFrom('emailOutbox').select(['toAddress', 'sentAt', 'attempts']).where('toAddress', 'in', addresses).execute()
  t.equal(rows.length, addresses.length)
  t.ok(rows.every(r => r.sentAt instanceof Date && r.attempts === 1), 'every email sent, each on one try')
  const delivered = (lines: string[]) => lines.filter(line => line.includes('email delivered') && addresses.some(a => line.includes(a)))
  const counts = logs.map(({ lines }) => delivered(lines).length)
  t.equal(counts[0] + counts[1], addresses.length, `one delivery per email across both instances (${counts.join(' + ')})`)
  for (const to of addresses) {
    if (logs.flatMap(({ lines }) => delivered(lines)).filter(line => line.includes(to)).length !== 1) t.fail(`${to} delivered other than once`)
  }
})

t.test('instances registering a new job queue at once all start', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL: each embedded app has its own database' }, async t => {
  const log = pino({ level: 'silent' })
  const handles = await Promise.all([0, 1].map(() => connectDatabase(testConfig(), log)))
  t.teardown(() => Promise.all(handles.map(handle => handle.close())))
  assertMigrated(await createMigrator(handles[0].db).migrateToLatest())
  const queues = await Promise.all(handles.map(handle => createJobQueue({ db: handle.db, log })))
  t.teardown(() => Promise.all(queues.map(queue => queue.stop())))
  // Unguarded, pgboss.create_queue deadlocked in nearly every round: a start that failed.
  for (let round = 1; round <= 3; round++) {
    const name = `race.${randomUUID()}`
    t.teardown(() => sql`select pgboss.delete_queue(${name})`.execute(handles[0].db))
    const started = await Promise.allSettled(queues.map(queue => queue.register(name, { retryLimit: 0, retryDelaySec: 1, retryBackoff: false, pollIntervalMs: 0, async handler () {} })))
    t.same(started.map(s => s.status === 'rejected' ? String(s.reason) : s.status), ['fulfilled', 'fulfilled'], `round ${round}: both registered ${name}`)
  }
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pgboss.queue where name like 'race.%'`.execute(handles[0].db)
  t.ok(rows[0].n >= 3, 'each queue made')
})

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// A quiet service's log lines must reach stdout within about a second, errors at once, although
// the stream buffers 4 KiB. The child logs through bufferedStdout and stays alive; each line's
// own time is compared with when the parent reads it.
const LOG_STREAM = fileURLToPath(new URL('../src/lib/log-stream.ts', import.meta.url))
const CHILD = `
import pino from 'pino'
import { bufferedStdout } from ${JSON.stringify(LOG_STREAM)}
const stdout = bufferedStdout()
const log = pino({ hooks: stdout.hooks }, stdout.stream)
log.info('quiet line')
setTimeout(() => log.error('an error'), 2500)
setTimeout(() => log.info('at exit'), 3000)
setTimeout(() => process.exit(0), 6000)
`

t.test('buffered log lines reach stdout within about a second, errors at once', async t => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] })
  const seen: Array<{ msg: string, lateMs: number }> = []
  let rest = ''
  child.stdout.on('data', chunk => {
    const lines = (rest + chunk).split('\n')
    rest = lines.pop() ?? ''
    for (const line of lines) {
      const { msg, time } = JSON.parse(line)
      seen.push({ msg, lateMs: Date.now() - time })
    }
  })
  await new Promise(resolve => child.on('close', resolve))
  t.same(seen.map(s => s.msg), ['quiet line', 'an error', 'at exit'], 'every line, in order')
  t.ok(seen[0].lateMs < 1800, `an info line arrived ${seen[0].lateMs} ms after it was logged (flushed within a second, not at exit)`)
  t.ok(seen[1].lateMs < 400, `an error arrived ${seen[1].lateMs} ms after it was logged`)
})

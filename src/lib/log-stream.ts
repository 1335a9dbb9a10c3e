import pino from 'pino'

const FLUSH_INTERVAL_MS = 1000
const BUFFER_BYTES = 4096
const ERROR_LEVEL = 50

export interface LogStream {
  stream: pino.DestinationStream
  hooks: { logMethod: (this: pino.Logger, args: Parameters<pino.LogFn>, method: pino.LogFn, level: number) => void }
  close (): void
}

/**
 * stdout for the service's logger. Lines are buffered up to 4 KiB so a request never waits for
 * a write, but an error goes out at once and any other line within about a second: a quiet
 * service's lines (the first "Server listening" included) are not minutes late.
 */
export function bufferedStdout (): LogStream {
  const stream = pino.destination({ dest: 1, sync: false, minLength: BUFFER_BYTES })
  let unflushed = false
  const flush = () => { unflushed = false; stream.flush() }
  const timer = setInterval(() => { if (unflushed) flush() }, FLUSH_INTERVAL_MS).unref()
  return {
    stream,
    hooks: {
      logMethod (args, method, level) {
        method.apply(this, args)
        if (level >= ERROR_LEVEL) flush()
        else unflushed = true
      }
    },
    close () { clearInterval(timer); if (unflushed) flush() }
  }
}

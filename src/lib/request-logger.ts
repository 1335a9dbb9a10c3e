import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString, Logger, LogFn } from 'pino'

/**
 * A request's logger that becomes a pino child on the first line its level lets through.
 * Fastify makes a child logger for every request, and pino runs the child's bindings through
 * every redaction path there and then (a parse of each path and about 4 KB of garbage), although
 * at warn most requests never log a line.
 */
class LazyChildLogger {
  #child: Logger | undefined
  #level: LevelWithSilentOrString

  constructor (private readonly parent: Logger, private readonly bindings: Bindings, private readonly options: ChildLoggerOptions) {
    this.#level = options.level ?? parent.level
  }

  get level (): LevelWithSilentOrString { return this.#level }
  set level (value: LevelWithSilentOrString) {
    this.#level = value
    if (this.#child) this.#child.level = value
  }

  child (bindings: Bindings, options?: ChildLoggerOptions) { return this.#real().child(bindings, options) }
  silent () {}
  fatal (...args: Parameters<LogFn>) { this.#log('fatal', args) }
  error (...args: Parameters<LogFn>) { this.#log('error', args) }
  warn (...args: Parameters<LogFn>) { this.#log('warn', args) }
  info (...args: Parameters<LogFn>) { this.#log('info', args) }
  debug (...args: Parameters<LogFn>) { this.#log('debug', args) }
  trace (...args: Parameters<LogFn>) { this.#log('trace', args) }

  #log (level: Level, args: Parameters<LogFn>) {
    const values = this.parent.levels.values
    if (values[level] >= (values[this.#level] ?? Infinity)) this.#real()[level](...args)
  }

  #real (): Logger {
    if (!this.#child) {
      this.#child = this.parent.child(this.bindings, this.options)
      if (this.#child.level !== this.#level) this.#child.level = this.#level
    }
    return this.#child
  }
}

export function lazyChildLoggerFactory (parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(parent as Logger, bindings, options) as unknown as FastifyBaseLogger
}

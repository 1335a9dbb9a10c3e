// OpenTelemetry tracing, loaded by the process entry (src/start.cts) only when
// OTEL_EXPORTER_OTLP_ENDPOINT is set: off, none of this is loaded. Instrumentations patch
// modules as they are required, so this runs before server.js imports fastify, pg, ioredis and
// pino. Configuration is OpenTelemetry's own OTEL_* variables (README, Tracing).
import dc from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { diag, DiagConsoleLogger, DiagLogLevel } from '@opentelemetry/api'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'

const SHUTDOWN_TIMEOUT_MS = 5000
// Probes and scrapes, every few seconds each: traces of them would drown the requests'.
const UNTRACED = /^\/(health|metrics)(\/|\?|$)/

/** A query string with every value replaced: its filters may be an email searched for. */
function redactedQuery (url: string) {
  const params = new URLSearchParams(url.slice(url.indexOf('?') + 1))
  for (const name of new Set(params.keys())) params.set(name, 'REDACTED')
  return params.toString()
}

if (process.env.OTEL_LOG_LEVEL) {
  const level = DiagLogLevel[process.env.OTEL_LOG_LEVEL.toUpperCase() as keyof typeof DiagLogLevel]
  diag.setLogger(new DiagConsoleLogger(), level ?? DiagLogLevel.INFO)
}

// OTLP/HTTP only: protobuf (the specification's default) or JSON.
const protocol = process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf'
if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
  console.error(`Configuration error: OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (not ${protocol})`)
  process.exit(1)
}
const exporter = protocol === 'http/json' ? new JsonExporter() : new ProtobufExporter()

const provider = new NodeTracerProvider({
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over ours.
  resource: defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'user-management-api' }))
    .merge(detectResources({ detectors: [envDetector] })),
  // The OTEL_BSP_* variables tune the batches; OTEL_TRACES_SAMPLER the sampling.
  spanProcessors: [new BatchSpanProcessor(exporter)]
})
// W3C traceparent and baggage: an incoming trace is continued.
provider.register()

registerInstrumentations({
  instrumentations: [
    // The server span, named by the route template that @fastify/otel reports to it. It records
    // no header (Authorization included) and no body; query values are replaced.
    new HttpInstrumentation({
      ignoreIncomingRequestHook: request => UNTRACED.test(request.url ?? ''),
      startIncomingSpanHook: request => request.url?.includes('?') ? { 'url.query': redactedQuery(request.url) } : {},
      // The service makes no HTTP calls of its own.
      disableOutgoingRequestInstrumentation: true
    }),
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      // A span for each hook, or for the handler, of each request would outnumber the ones
      // that matter and cost each request as much again (bench: about 1 ms of CPU with them).
      instrumentHooks: false,
      instrumentHandler: false,
      ignorePaths: route => UNTRACED.test(route.url ?? ''),
      requestHook: (span, request) => {
        if (!request.url.includes('?')) return
        span.setAttribute('url.path', request.url.split('?', 1)[0])
        span.setAttribute('url.query', redactedQuery(request.url))
      }
    }),
    // Statement text only: parameters are bound ($1), their values are never recorded
    // (enhancedDatabaseReporting stays off). Queries outside a request (the job queue's polling)
    // make no traces of their own.
    new PgInstrumentation({
      requireParentSpan: true,
      // A pool checkout per query, in microseconds: its wait is in the parent's time anyway.
      ignoreConnectSpans: true,
      // Our statements are prepared under a hash of their text (src/db/connect.ts), which the
      // span would be named after: named by their command instead, as unnamed ones are.
      requestHook: (span, { query, connection }) => {
        if (query.name) span.updateName(`pg.query:${query.text.trimStart().split(/\s/, 1)[0].toUpperCase()} ${connection.database ?? ''}`.trimEnd())
      }
    }),
    // The command name only: keys hold emails and session ids, arguments values.
    new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: command => command }),
    // The trace and span ids in every log line written inside a traced request.
    new PinoInstrumentation({
      disableLogSending: true,
      logKeys: { traceId: 'traceId', spanId: 'spanId', traceFlags: 'traceFlags' }
    })
  ]
})

// Node's ES module loader reads a CommonJS package without require(), where the hooks wait:
// required once here, their classes are patched before server.js imports the same modules.
require('pg')
require('ioredis')

// The process exits as soon as the app has closed (close-with-grace): the spans still batched
// go out before that. An onClose hook added first runs last, after the database and Redis.
dc.subscribe('fastify.initialization', message => {
  const { fastify } = message as { fastify: FastifyInstance }
  fastify.addHook('onClose', async () => {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      provider.shutdown().catch((err: unknown) => { fastify.log.warn({ err }, 'exporting the last spans failed') }),
      new Promise(resolve => { timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS) })
    ])
    clearTimeout(timer)
  })
})

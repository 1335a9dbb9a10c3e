// The deploy files (issue 14), checked without Docker or a cluster: the compose file with
// docker-compose, nginx with nginx itself (syntax, then a run in front of stand-in instances),
// the Kubernetes manifests against the API schemas, and every metric that the alerting rules and
// the Grafana dashboard use against what /metrics exports. Names come from the files, not from here.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import YAML from 'yaml'
import { parser as promql } from '@prometheus-io/lezer-promql'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { EnvSchema, loadConfig } from '../src/config.js'
import { build, freePort } from './helper.js'
import { NGINX, nginxCopy, program, startNginx } from './nginx.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8')
const ENV_NAMES = new Set(Object.keys(EnvSchema.properties))
const DEFAULT_PORT = String(EnvSchema.properties.PORT.default)
const exec = promisify(execFile)
const strongSecret = () => randomBytes(48).toString('base64')
const mfaKey = () => randomBytes(32).toString('base64')
// One app for the probe routes and /metrics.
const app = await build(t)

const DOCKER_COMPOSE = program('docker-compose')

/** The image's CMD, the command of every container that sets none. */
const dockerCmd = JSON.parse(read('Dockerfile').match(/^CMD (\[.*\])$/m)?.[1] ?? '[]') as string[]

/** Commands that run node itself: npm would exit at once on SIGTERM instead of draining. */
function checkCommand (t: Test, command: unknown[] | undefined, args: unknown[] | undefined, where: string) {
  const argv = (command ?? dockerCmd).map(String)
  t.equal(argv[0], 'node', `${where}: runs node directly${command ? '' : ' (the image\'s CMD)'}`)
  t.notOk([...argv, ...(args ?? []).map(String)].some(word => /(^|\/)(npm|npx|yarn|pnpm)$/.test(word)), `${where}: no package manager in the command`)
}

// ---- docker-compose.yml and .env.example

interface ComposeService {
  build?: unknown
  image?: string
  command?: unknown[]
  entrypoint?: unknown[]
  environment?: Record<string, string | number>
  healthcheck?: { test?: unknown[] }
  networks?: Record<string, { ipv4_address?: string } | null>
  volumes?: string[]
}
const composeText = read('docker-compose.yml')
const compose = YAML.parse(composeText) as { services: Record<string, ComposeService> }
// The API instances are the services built from this repository.
const apiServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined)
const serviceMounting = (file: string) => Object.entries(compose.services).find(([, s]) => s.volumes?.some(v => v.split(':')[0] === file))
const envExample = new Map([...read('.env.example').matchAll(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm)].map(m => [m[1], m[2]]))

/** An API instance's environment as the service would see it, .env.example's values filled in. */
function resolvedApiEnv (env: Record<string, string | number>, fill: Record<string, string>) {
  return Object.fromEntries(Object.entries(env).map(([name, value]) => {
    const ref = String(value).match(/^\$\{(\w+)(?::?[-?](.*))?\}$/)
    if (!ref) return [name, String(value)]
    const given = fill[ref[1]] ?? envExample.get(ref[1])
    return [name, given || (String(value).includes(':-') ? ref[2] ?? '' : '')]
  }))
}

t.test('compose and .env.example: every variable they name is in the config schema', async t => {
  const interpolated = new Set([...composeText.matchAll(/\$\{(\w+)/g)].map(m => m[1]))
  t.notMatch(composeText, /\$(?!\{|\$)\w/, 'every interpolation is braced (so none escapes this check)')
  for (const name of interpolated) {
    t.ok(ENV_NAMES.has(name), `docker-compose.yml reads ${name}: a config variable`)
    t.ok(envExample.has(name), `docker-compose.yml reads ${name}: listed in .env.example`)
  }
  for (const [name, value] of envExample) {
    t.ok(ENV_NAMES.has(name), `.env.example: ${name} is a config variable`)
    t.ok(interpolated.has(name), `.env.example: ${name} is read by docker-compose.yml`)
    if (/SECRET|PASSWORD/.test(name)) t.equal(value, '', `.env.example: ${name} is left empty (no secret, not even a sample one)`)
  }
  t.ok(apiServices.length >= 2, `at least two API instances (${apiServices.map(([n]) => n).join(', ')})`)
  for (const [name, service] of apiServices) {
    for (const key of Object.keys(service.environment ?? {})) t.ok(ENV_NAMES.has(key), `${name}: ${key} is a config variable`)
    const env = resolvedApiEnv(service.environment ?? {}, { JWT_SECRET: strongSecret(), MFA_ENCRYPTION_KEY: mfaKey(), ADMIN_PASSWORD: 'Compose-Check-9' })
    t.doesNotThrow(() => loadConfig(env), `${name}: its environment is a valid configuration`)
  }
})

t.test('docker-compose config accepts the file with .env.example', { skip: !DOCKER_COMPOSE && 'docker-compose is not installed (apt-get install -y docker-compose; .ci/run does)' }, async t => {
  // A clean environment: the shell's own JWT_SECRET or LOG_LEVEL must not hide a missing default.
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() }
  const args = ['--env-file', '.env.example', '-f', 'docker-compose.yml', 'config', '-q']
  await t.resolves(exec(DOCKER_COMPOSE!, args, { cwd: ROOT, env: { ...base, JWT_SECRET: strongSecret(), MFA_ENCRYPTION_KEY: mfaKey(), ADMIN_PASSWORD: 'Compose-Check-9' } }), 'valid once the secrets are filled in')
  const refused = await exec(DOCKER_COMPOSE!, args, { cwd: ROOT, env: base }).then(() => undefined, (err: { stderr: string }) => err)
  t.match(refused?.stderr, /JWT_SECRET/, 'refused while JWT_SECRET is empty, as .env.example leaves it')
})

t.test('compose wiring: the instances behind nginx, scraped by Prometheus, health-checked, trusting only nginx', async t => {
  const nginxConf = read('deploy/nginx/nginx.conf')
  const nginx = serviceMounting('./deploy/nginx/nginx.conf')
  t.ok(nginx, 'a service runs deploy/nginx/nginx.conf')
  const nginxAddress = Object.values(nginx?.[1].networks ?? {}).find(n => n?.ipv4_address)?.ipv4_address
  t.ok(nginxAddress, 'nginx has a fixed address')

  const upstream = nginxConf.match(/upstream\s+api\s*\{([^}]*)\}/)?.[1] ?? ''
  const servers = [...upstream.matchAll(/^\s*server\s+(\S+)/gm)].map(m => m[1])
  const apiPort = (service: ComposeService) => String(service.environment?.PORT ?? DEFAULT_PORT)
  t.same(servers, apiServices.map(([name, s]) => `${name}:${apiPort(s)}`), 'nginx balances over every API instance on its PORT')

  const prometheus = YAML.parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: Array<{ static_configs?: Array<{ targets: string[] }> }> }
  const targets = prometheus.scrape_configs.flatMap(c => c.static_configs ?? []).flatMap(c => c.targets)
  t.same(targets, apiServices.map(([name, s]) => `${name}:${s.environment?.METRICS_PORT}`), 'Prometheus scrapes each instance on its METRICS_PORT')
  t.ok(serviceMounting('./deploy/prometheus'), 'a service runs deploy/prometheus')

  for (const [name, service] of apiServices) {
    t.equal(String(service.environment?.TRUST_PROXY), nginxAddress, `${name}: TRUST_PROXY is nginx's address only`)
    t.ok(service.environment?.METRICS_PORT, `${name}: /metrics on its own port, which nginx does not proxy`)
    checkCommand(t, service.command, service.entrypoint, name)
  }
  for (const [name, service] of Object.entries(compose.services)) {
    t.ok(service.healthcheck?.test?.length, `${name}: has a health check`)
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]
      if (source.startsWith('.')) t.ok(existsSync(path.join(ROOT, source)), `${name}: mounts ${source}, which exists`)
    }
  }
})

// ---- nginx

t.test('nginx.conf: TLS 1.2+, HSTS, forwarding headers, failover, streams unbuffered, no gzip', async t => {
  const conf = read('deploy/nginx/nginx.conf')
  t.match(conf, /^\s*ssl_protocols\s+TLSv1\.2\s+TLSv1\.3;/m, 'TLS 1.2 and 1.3 only')
  t.notMatch(conf, /ssl_protocols[^;]*(SSLv|TLSv1(\.[01])?\s|TLSv1;)/, 'nothing older')
  t.match(conf, /return 301 https:\/\/\$host\$request_uri;/, 'HTTP redirects to HTTPS')
  t.match(conf, /add_header Strict-Transport-Security "max-age=\d+[^"]*" always;/, 'HSTS, on error pages too')
  t.match(conf, /^\s*gzip off;/m, 'no second compression')
  t.match(conf, /^\s*proxy_next_upstream\s+error timeout[^;]*;/m, 'passive failover')
  for (const header of ['X-Forwarded-For', 'X-Forwarded-Proto', 'X-Request-Id', 'Upgrade', 'Connection']) {
    t.match(conf, new RegExp(`^\\s*proxy_set_header ${header} `, 'm'), `forwards ${header}`)
  }
  const events = conf.match(/location \/api\/v1\/events \{([^}]*)\}/)?.[1] ?? ''
  t.match(events, /proxy_buffering off;/, 'the event streams are not buffered')
})

const nginxSkip = !NGINX && 'nginx is not installed (apt-get install -y nginx; .ci/run does)'

t.test('nginx -t accepts the configuration', { skip: nginxSkip }, async t => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-t-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const args = await nginxCopy(dir, { http: 80, https: 443 }, apiServices.map(() => '127.0.0.1:3000'))
  const { stderr } = await exec(NGINX!, ['-t', ...args])
  t.match(stderr, /test is successful/)
  t.notMatch(stderr, /\[(warn|emerg)\]/, 'without warnings')
})

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }
function fetchVia (request: typeof httpRequest, options: RequestOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request({ rejectUnauthorized: false, ...options } as RequestOptions, res => {
      let body = ''
      res.setEncoding('utf8').on('data', chunk => { body += chunk }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    }).on('error', reject).end()
  })
}

t.test('nginx in front of an overloaded and a live instance: redirect, failover, headers, WebSocket, SSE', { skip: nginxSkip }, async t => {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-run-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The live instance echoes what it received, sends its own HSTS header (as the service does),
  // streams /api/v1/events slowly and accepts WebSocket upgrades.
  const instance = createServer((req, res) => {
    if (req.url === '/api/v1/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' }).write('data: first\n\n')
      setTimeout(() => res.end('data: last\n\n'), 1500)
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'strict-transport-security': 'max-age=1' })
    res.end(JSON.stringify({ url: req.url, headers: req.headers }))
  })
  instance.on('upgrade', (_req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    socket.pipe(socket)
  })
  await new Promise<void>(resolve => instance.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { instance.closeAllConnections(); instance.close(resolve) }))
  // The other answers every request as an instance shedding load does.
  const overloaded = createServer((_req, res) => { res.writeHead(503, { 'retry-after': '5' }).end() })
  await new Promise<void>(resolve => overloaded.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => overloaded.close(resolve)))
  const address = (server: typeof instance) => `127.0.0.1:${(server.address() as AddressInfo).port}`
  const ports = { http: await freePort(), https: await freePort() }
  const args = await nginxCopy(dir, ports, apiServices.map((_s, i) => address(i === 0 ? overloaded : instance)))

  const child = await startNginx(args, ports.https)
  t.teardown(() => { child.kill('SIGTERM') })
  const https = (options: RequestOptions) => fetchVia(httpsRequest as typeof httpRequest, { host: '127.0.0.1', port: ports.https, ...options })

  const plain = await fetchVia(httpRequest, { host: '127.0.0.1', port: ports.http, path: '/api/v1/users?limit=1' })
  t.equal(plain.status, 301, 'HTTP is redirected')
  t.equal(plain.headers.location, 'https://127.0.0.1/api/v1/users?limit=1', 'to the same URL over HTTPS')

  for (let i = 0; i < 4; i++) {
    const res = await https({ path: '/api/v1/users', headers: { 'x-forwarded-for': '203.0.113.7' } })
    if (!t.equal(res.status, 200, `request ${i + 1} answered by the instance that is not overloaded`)) continue
    t.match(res.headers['strict-transport-security'], /^max-age=63072000; includeSubDomains$/, 'one HSTS header, nginx\'s')
    const seen = JSON.parse(res.body).headers
    t.equal(seen['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the connecting address, not what the client claimed')
    t.equal(seen['x-forwarded-proto'], 'https')
    t.match(seen['x-request-id'], /^[0-9a-f]{32}$/, 'a request id when the client sent none')
  }
  const own = await https({ path: '/', headers: { 'x-request-id': 'client-id-42' } })
  t.equal(JSON.parse(own.body).headers['x-request-id'], 'client-id-42', 'the client\'s X-Request-Id is kept')

  const echoed = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: ports.https, path: '/api/v1/events/ws', rejectUnauthorized: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } })
    req.on('upgrade', (res, socket) => {
      if (res.statusCode !== 101) reject(new Error(`status ${res.statusCode}`))
      socket.once('data', data => { socket.destroy(); resolve(String(data)) }).write('ping')
    }).on('response', res => reject(new Error(`no upgrade: ${res.statusCode}`))).on('error', reject).end()
  })
  t.equal(echoed, 'ping', 'a WebSocket upgrade passes through')

  const firstEvent = await new Promise<number>((resolve, reject) => {
    const started = Date.now()
    httpsRequest({ host: '127.0.0.1', port: ports.https, path: '/api/v1/events', rejectUnauthorized: false }, res => {
      res.once('data', () => { resolve(Date.now() - started); res.destroy() })
    }).on('error', reject).end()
  })
  t.ok(firstEvent < 1000, `an event reaches the client before the stream ends (${firstEvent} ms)`)
})

// ---- Kubernetes

interface Container { name: string, image?: string, command?: string[], args?: string[], ports?: Array<{ name?: string, containerPort: number }>, env?: Array<{ name: string }>, envFrom?: Array<{ configMapRef?: { name: string }, secretRef?: { name: string } }>, [probe: string]: any }
interface PodTemplate { metadata?: { labels?: Record<string, string>, annotations?: Record<string, string> }, spec: { containers: Container[], initContainers?: Container[], restartPolicy?: string } }
interface Manifest { apiVersion: string, kind: string, metadata: { name: string }, spec?: any, data?: Record<string, string>, stringData?: Record<string, string>, file: string }

const MODELS: Record<string, new (data: any) => { validate (): void }> = {
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'networking.k8s.io/v1/Ingress': Ingress
}
const K8S_DIR = 'deploy/k8s'
const manifests: Manifest[] = readdirSync(path.join(ROOT, K8S_DIR)).filter(f => /\.ya?ml$/.test(f)).sort().flatMap(file =>
  YAML.parseAllDocuments(read(path.join(K8S_DIR, file))).map(doc => doc.toJS()).filter(Boolean).map(doc => ({ ...doc, file })))
const ofKind = (kind: string) => manifests.filter(m => m.kind === kind)
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  Object.keys(selector ?? {}).length > 0 && Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v)

t.test('Kubernetes: every manifest is valid against the API schema', async t => {
  for (const { file, ...doc } of manifests) {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`]
    if (!t.ok(Model, `${file}: ${doc.apiVersion} ${doc.kind} is a known kind`)) continue
    t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name} is valid`)
  }
  for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'ConfigMap', 'Secret', 'NetworkPolicy', 'Job']) {
    t.ok(ofKind(kind).length, `there is a ${kind}`)
  }
})

t.test('Kubernetes: probes on real routes and ports, config names, rollout, draining, node as the command', async t => {
  const [deployment] = ofKind('Deployment')
  const configMaps = ofKind('ConfigMap')
  const secrets = ofKind('Secret')
  const config = Object.assign({}, ...configMaps.map(m => m.data))
  const port = Number(config.PORT ?? DEFAULT_PORT)
  const pod = deployment.spec.template as PodTemplate
  const [api] = pod.spec.containers
  const portOf = (container: Container, ref: string | number) => typeof ref === 'number' ? ref : container.ports?.find(p => p.name === ref)?.containerPort

  // Probes: liveness and startup on /health, readiness on /health/ready, each a route that answers.
  const expected: Record<string, string> = { livenessProbe: '/health', startupProbe: '/health', readinessProbe: '/health/ready' }
  for (const [probe, route] of Object.entries(expected)) {
    const get = api[probe]?.httpGet
    t.equal(get?.path, route, `${probe} on ${route}`)
    t.equal(portOf(api, get?.port), port, `${probe} on the container's PORT (${port})`)
    t.equal((await app.inject({ method: 'GET', url: get?.path ?? '/' })).statusCode, 200, `${probe}: GET ${get?.path} answers 200`)
  }
  t.equal(portOf(api, 'metrics'), Number(config.METRICS_PORT), 'the metrics port is METRICS_PORT')
  t.equal(pod.metadata?.annotations?.['prometheus.io/port'], config.METRICS_PORT, 'Prometheus is told to scrape METRICS_PORT')

  // Every env name (ConfigMap, Secret, env lists) is a config variable, and the set is a valid configuration.
  const templates: Array<[string, PodTemplate]> = [...ofKind('Deployment'), ...ofKind('Job')].map(m => [`${m.file} ${m.metadata.name}`, m.spec.template])
  for (const m of [...configMaps, ...secrets]) {
    for (const key of Object.keys({ ...m.data, ...m.stringData })) t.ok(ENV_NAMES.has(key), `${m.file}: ${key} is a config variable`)
  }
  for (const [where, template] of templates) {
    for (const container of [...template.spec.containers, ...template.spec.initContainers ?? []]) {
      for (const { name } of container.env ?? []) t.ok(ENV_NAMES.has(name), `${where}: ${name} is a config variable`)
      for (const ref of container.envFrom ?? []) {
        const [kind, name] = ref.configMapRef ? ['ConfigMap', ref.configMapRef.name] : ['Secret', ref.secretRef?.name]
        t.ok(ofKind(kind).some(m => m.metadata.name === name), `${where}: envFrom ${kind} ${name} is among the manifests`)
      }
      checkCommand(t, container.command, container.args, `${where} ${container.name}`)
    }
  }
  const secretEnv = Object.assign({}, ...secrets.map(m => ({ ...m.stringData })))
  t.doesNotThrow(() => loadConfig({ ...config, ...secretEnv, JWT_SECRET: strongSecret(), MFA_ENCRYPTION_KEY: mfaKey() }), 'ConfigMap + Secret (with a real JWT_SECRET and MFA_ENCRYPTION_KEY) is a valid configuration')
  t.throws(() => loadConfig({ ...config, ...secretEnv }), /JWT_SECRET/, 'the Secret template as it stands cannot start the service')

  // Rollout and draining.
  t.equal(deployment.spec.strategy?.rollingUpdate?.maxUnavailable, 0, 'rolling update with maxUnavailable 0')
  t.ok(api.lifecycle?.preStop, 'a preStop delay for connection draining')
  t.ok(api.resources?.requests?.cpu && api.resources?.requests?.memory && api.resources?.limits?.memory, 'resources requested and memory limited')

  // The migration Job runs the built migrate CLI of the same image.
  const [job] = ofKind('Job')
  const [migrate] = (job.spec.template as PodTemplate).spec.containers
  t.equal(migrate.image, api.image, 'the Job runs the Deployment\'s image')
  const script = migrate.command?.find(word => word.endsWith('.js')) ?? ''
  t.match(script, /^dist\/.+\.js$/, 'the Job runs a built script')
  t.ok(existsSync(path.join(ROOT, script.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), `${script} is built from a source file (tsconfig.build.json: outDir dist, rootDir .)`)
  t.match(read('src/cli/migrate.ts'), /command === 'up'/, 'migrate takes "up"')
  t.equal(migrate.command?.at(-1), 'up', 'the Job migrates up')
  t.equal(job.spec.template.spec.restartPolicy, 'Never', 'a failed migration is retried by the Job (backoffLimit), not in place')

  // The other objects point at the API pods, and only at them.
  const labels = pod.metadata?.labels
  const [service] = ofKind('Service')
  t.ok(matches(service.spec.selector, labels), 'the Service selects the API pods')
  t.notOk(matches(service.spec.selector, job.spec.template.metadata?.labels), 'and not the migration pod')
  for (const p of service.spec.ports) t.equal(portOf(api, p.targetPort), port, `Service port ${p.name} targets PORT`)
  t.equal(ofKind('HorizontalPodAutoscaler')[0].spec.scaleTargetRef.name, deployment.metadata.name, 'the HPA scales the Deployment')
  t.ok(ofKind('HorizontalPodAutoscaler')[0].spec.minReplicas >= 2, 'at least two replicas')
  t.ok(matches(ofKind('PodDisruptionBudget')[0].spec.selector.matchLabels, labels), 'the PodDisruptionBudget covers the API pods')
  const [policy] = ofKind('NetworkPolicy')
  t.ok(matches(policy.spec.podSelector.matchLabels, labels), 'the NetworkPolicy covers the API pods')
  const admitted = policy.spec.ingress.flatMap((rule: any) => rule.ports ?? []).map((p: any) => portOf(api, p.port))
  t.same(admitted.sort(), [port, Number(config.METRICS_PORT)].sort(), 'it admits the API port and the metrics port')
})

// ---- Prometheus rules and the Grafana dashboard

/** Metric names in a PromQL expression; throws on a syntax error. */
function metricNames (expr: string): string[] {
  // Grafana's own interval variables ($__rate_interval) stand for a duration.
  const query = expr.replace(/\$__\w+/g, '5m')
  const names: string[] = []
  let error: number | undefined
  promql.parse(query).iterate({
    enter (node) {
      if (node.type.isError) error ??= node.from
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier')
        if (!id) throw new Error(`a selector without a metric name in: ${expr}`)
        names.push(query.slice(id.from, id.to))
      }
    }
  })
  if (error !== undefined) throw new Error(`PromQL syntax error at ${error} in: ${expr}`)
  return names
}

/** The /metrics text declares it (# TYPE), as itself or as a histogram's _bucket/_sum/_count. */
function exported (text: string, name: string) {
  if (new RegExp(`^# TYPE ${name} `, 'm').test(text)) return true
  const base = name.match(/^(.+)_(bucket|sum|count)$/)?.[1]
  return base !== undefined && new RegExp(`^# TYPE ${base} (histogram|summary)$`, 'm').test(text)
}

// Series Prometheus makes itself for each target, not the service.
const PROMETHEUS_SERIES = new Set(['up'])

t.test('alerting rules and the dashboard parse, and use only metrics that /metrics exports', async t => {
  const used = new Map<string, Set<string>>()
  const use = (where: string, expr: string) => {
    try {
      for (const name of metricNames(expr)) used.set(name, (used.get(name) ?? new Set()).add(where))
    } catch (err) { t.fail(`${where}: ${(err as Error).message}`) }
  }

  const prometheus = YAML.parse(read('deploy/prometheus/prometheus.yml'))
  t.same(prometheus.rule_files, ['rules.yml'], 'prometheus.yml loads rules.yml')
  const rules = YAML.parse(read('deploy/prometheus/rules.yml')) as { groups: Array<{ name: string, rules: Array<Record<string, any>> }> }
  const alerts = rules.groups.flatMap(g => g.rules)
  t.ok(alerts.length >= 5, `${alerts.length} alerting rules`)
  for (const rule of alerts) {
    t.ok(rule.alert && rule.expr && rule.labels?.severity && rule.annotations?.summary, `${rule.alert}: a name, an expression, a severity and a summary`)
    use(`rules.yml ${rule.alert}`, rule.expr)
  }

  const datasources = YAML.parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources as Array<{ uid: string, type: string }>
  const providers = YAML.parse(read('deploy/grafana/provisioning/dashboards/user-management.yml')).providers as Array<{ options: { path: string } }>
  const grafana = serviceMounting('./deploy/grafana/dashboards')
  t.ok(grafana?.[1].volumes?.includes(`./deploy/grafana/dashboards:${providers[0].options.path}:ro`), 'the dashboard provider reads the mounted dashboards')
  const dashboard = JSON.parse(read('deploy/grafana/dashboards/user-management.json'))
  const panels = (dashboard.panels as any[]).flatMap(p => [p, ...p.panels ?? []]).filter(p => p.type !== 'row')
  t.ok(panels.length > 0, `${panels.length} panels`)
  for (const panel of panels) {
    t.ok(panel.targets?.length, `panel "${panel.title}" has queries`)
    for (const target of panel.targets ?? []) {
      const uid = target.datasource?.uid ?? panel.datasource?.uid
      t.ok(datasources.some(d => d.uid === uid && d.type === 'prometheus'), `panel "${panel.title}": its datasource is provisioned`)
      use(`dashboard "${panel.title}"`, target.expr)
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    const selector = String(variable.query).match(/^label_values\((.+),\s*\w+\)$/)?.[1]
    if (selector) use(`dashboard variable ${variable.name}`, selector)
  }

  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/health/ready' })
  await app.inject({ method: 'GET', url: '/api/v1/users' })
  await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: 'nobody@example.test', password: 'Wrong-Password-1' } })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200, 'GET /metrics')
  for (const [name, where] of [...used].sort()) {
    if (PROMETHEUS_SERIES.has(name)) continue
    t.ok(exported(res.body, name), `${name} is in /metrics (used by ${[...where].join(', ')})`)
  }
})

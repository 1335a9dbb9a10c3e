// The repository's deploy/nginx/nginx.conf made runnable here (test/deploy.test.ts and
// test/cluster/cluster.test.ts): a test certificate, loopback ports and upstreams, logs and pid
// file in the test's own directory, and nginx run as a child, not as a daemon.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const exec = promisify(execFile)

/** A program on PATH or in the sbin directories (nginx lives in /usr/sbin). */
export function program (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin']
  return dirs.filter(dir => path.isAbsolute(dir)).map(dir => path.join(dir, name)).find(file => existsSync(file))
}
export const NGINX = program('nginx')

/** A copy of nginx.conf that runs here: a test certificate, local ports and upstreams; returns nginx's arguments. */
export async function nginxCopy (dir: string, ports: { http: number, https: number }, upstreams: string[]) {
  await exec('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')])
  let conf = readFileSync(path.join(ROOT, 'deploy/nginx/nginx.conf'), 'utf8')
  const replace = (pattern: RegExp, by: (...m: string[]) => string, count: number, what: string) => {
    let seen = 0
    conf = conf.replace(pattern, (...m: string[]) => { seen++; return by(...m) })
    if (seen !== count) throw new Error(`nginx.conf: expected ${count} ${what}, found ${seen}`)
  }
  // Node's stdio pipes are sockets, which nginx cannot open as /dev/stderr: log to files.
  replace(/^(\s*(error|access)_log\s+)\/dev\/std(err|out)/gm, (_m, d, kind) => `${d}${path.join(dir, `${kind}.log`)}`, 2, 'log lines')
  replace(/^(\s*ssl_certificate(_key)?\s+)\S+\/(tls\.\w+);/gm, (_m, d, _k, file) => `${d}${path.join(dir, file)};`, 2, 'ssl_certificate lines')
  replace(/^(\s*listen\s+)80;/m, (_m, d) => `${d}127.0.0.1:${ports.http};`, 1, 'listen 80')
  replace(/^(\s*listen\s+)443 ssl;/m, (_m, d) => `${d}127.0.0.1:${ports.https} ssl;`, 1, 'listen 443 ssl')
  let i = 0
  replace(/^(\s*server\s+)[\w.-]+:\d+/gm, (_m, d) => `${d}${upstreams[i++]}`, upstreams.length, 'upstream servers')
  const file = path.join(dir, 'nginx.conf')
  await writeFile(file, conf)
  // -e: the error log before the configuration is read; pid: not the system nginx's.
  return ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', file, '-g', `pid ${path.join(dir, 'nginx.pid')};`]
}

/** Runs nginx in the foreground with nginxCopy's arguments; resolves once it accepts on the port. */
export async function startNginx (args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(NGINX!, [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', chunk => { log += chunk })
  for (let i = 0; ; i++) {
    const up = await new Promise(resolve => {
      const socket = netConnect(port, '127.0.0.1').on('connect', () => { socket.destroy(); resolve(true) }).on('error', () => resolve(false))
    })
    if (up) return child
    if (i > 50 || child.exitCode !== null) {
      child.kill('SIGTERM')
      throw new Error(`nginx did not start: ${log}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from './http.js'

export interface ServerProcess {
  name: string
  url: string
  pid: number
  /** Resident memory now and its high-water mark, in MiB (from /proc/<pid>/status). */
  memory (): { rssMiB: number, hwmMiB: number }
  /** CPU time (user + system) the process has used so far, in ms. */
  cpuMs (): number
  /** The system (kernel) part of it, in ms. */
  sysCpuMs (): number
  stop (): Promise<void>
}

/** A port nobody listens on right now (the OS picks it). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
}

function readMemory (pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 }
}

const TICK_MS = 10 // USER_HZ is 100 on Linux

/** utime + stime from /proc/<pid>/stat (fields 14 and 15, counted after the parenthesised name). */
function cpuMsOf (pid: number | string, part: 'all' | 'system' = 'all') {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((part === 'all' ? Number(fields[11]) : 0) + Number(fields[12])) * TICK_MS
}

/** CPU time used so far by each PostgreSQL backend serving one database (its process title names it), in ms by pid. */
export function postgresCpu (database: string): Map<string, number> {
  const backends = new Map<string, number>()
  for (const pid of readdirSync('/proc').filter(name => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(` ${database} `)) backends.set(pid, cpuMsOf(pid))
    } catch { /* gone meanwhile */ }
  }
  return backends
}

/** The CPU the backends used between two snapshots (a backend that exited in between is not counted). */
export function postgresCpuSince (before: Map<string, number>, database: string) {
  let total = 0
  for (const [pid, ms] of postgresCpu(database)) total += ms - (before.get(pid) ?? 0)
  return total
}

function exited (child: ChildProcess) {
  return new Promise<void>(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
}

/**
 * Starts `node <args>` with its own environment, logs to logFile, and waits until GET /health
 * answers 200 (at most timeoutMs). The pid is the server's own: no wrapper process in between.
 */
export async function startServer (name: string, args: string[], env: NodeJS.ProcessEnv, port: number, logFile: string, timeoutMs = 60_000): Promise<ServerProcess> {
  const log = createWriteStream(logFile)
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.pipe(log)
  child.stderr!.pipe(log)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} while starting; see ${logFile}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} did not answer GET /health within ${timeoutMs} ms; see ${logFile}`)
    }
    const healthy = await request(`${url}/health`).then(r => r.status === 200, () => false)
    if (healthy) break
    await sleep(200)
  }
  return {
    name,
    url,
    pid: child.pid!,
    memory: () => readMemory(child.pid!),
    cpuMs: () => cpuMsOf(child.pid!),
    sysCpuMs: () => cpuMsOf(child.pid!, 'system'),
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const killed = await Promise.race([exited(child).then(() => false), sleep(15_000).then(() => true)])
      if (killed) {
        child.kill('SIGKILL')
        await exited(child)
      }
    }
  }
}

/** Samples VmRSS every 100 ms while a load runs; stop() gives the peak seen. */
export function sampleRss (server: ServerProcess) {
  let peak = server.memory().rssMiB
  const timer = setInterval(() => {
    try { peak = Math.max(peak, server.memory().rssMiB) } catch { /* the process is gone; keep the last peak */ }
  }, 100)
  return {
    stop () {
      clearInterval(timer)
      try { peak = Math.max(peak, server.memory().rssMiB) } catch { /* gone */ }
      return peak
    }
  }
}

// Summarises a V8 .cpuprofile (from BENCH_CPU_PROF=1): self time by package and the hottest functions.
// Usage: npx tsx bench/profile-summary.ts bench/results/prof-<stamp>/<file>.cpuprofile [top]
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const [file, topArg] = process.argv.slice(2)
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]')
  process.exit(1)
}
const top = Number(topArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map(n => [n.id, n]))

/** Where a frame's code lives: a package under node_modules, the app's own file, or the runtime. */
function owner (url: string, name: string) {
  if (!url) return name.startsWith('(') ? name : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]
  if (url.startsWith('node:')) return url
  const app = /\/(dist\/)?((src|schemas)\/.*)$/.exec(url)
  return app ? app[2] : url
}

const selfByOwner = new Map<string, number>()
const selfByFunction = new Map<string, number>()
let total = 0
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i])
  const dt = profile.timeDeltas[i] ?? 0
  if (!node) continue
  total += dt
  const { functionName, url, lineNumber } = node.callFrame
  const who = owner(url, functionName)
  selfByOwner.set(who, (selfByOwner.get(who) ?? 0) + dt)
  const fn = `${functionName || '(anonymous)'} ${who}:${lineNumber + 1}`
  selfByFunction.set(fn, (selfByFunction.get(fn) ?? 0) + dt)
}

const print = (title: string, map: Map<string, number>) => {
  console.log(`\n${title}`)
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(100 * us / total).toFixed(1).padStart(6)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`)
  }
}
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`)
print('self time by owner', selfByOwner)
print('self time by function', selfByFunction)

import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

// The process entry must size libuv's pool (argon2's threads) before Node's ES module loader
// first uses it. Run src/start.cts as built, in front of a stand-in server.js that reports the
// process's thread count, and compare with that stand-in started directly as an ES module.
const START = fileURLToPath(new URL('../src/start.cts', import.meta.url))
const STAND_IN = `
import { readFileSync } from 'node:fs'
import { pbkdf2 } from 'node:crypto'
// Keep the pool busy so every thread it has is alive, then report.
await Promise.all(Array.from({ length: 8 }, () => new Promise(resolve => pbkdf2('p', 's', 1000, 32, 'sha256', resolve))))
console.log(readFileSync('/proc/self/status', 'utf8').match(/^Threads:\\s+(\\d+)/m)[1])
`

function threadsOf (dir: string, entry: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    // Through env(1): tap re-adds its loaders to NODE_OPTIONS of whatever it sees spawned, and
    // they would use the pool before the entry runs.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(dir, entry)], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', chunk => { out += chunk })
    child.on('error', reject)
    child.on('close', code => code === 0 ? resolve(Number(out.trim())) : reject(new Error(`${entry} exited with ${code}`)))
  })
}

t.test('the process entry sizes the thread pool to the cores before anything loads', { skip: process.platform !== 'linux' && 'reads /proc' }, async t => {
  const dir = await mkdtemp(path.join(tmpdir(), 'start-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { outputText } = ts.transpileModule(await readFile(START, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2022 },
    fileName: 'start.cts'
  })
  await writeFile(path.join(dir, 'start.cjs'), outputText)
  await writeFile(path.join(dir, 'server.js'), STAND_IN)
  await writeFile(path.join(dir, 'package.json'), '{"type":"module"}')
  const env = { ...process.env }
  delete env.UV_THREADPOOL_SIZE

  const direct = await threadsOf(dir, 'server.js', env)
  const started = await threadsOf(dir, 'start.cjs', env)
  // libuv's default pool is 4 threads; the entry makes it max(2, cores).
  t.equal(direct - started, 4 - Math.max(2, availableParallelism()))

  // An operator's own setting wins.
  t.equal(await threadsOf(dir, 'start.cjs', { ...env, UV_THREADPOOL_SIZE: '6' }), direct + 2)
})

t.test('the Docker image starts the process as npm start does (entry and heap limits)', async t => {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const start = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')).scripts.start as string
  const cmd = (await readFile(path.join(root, 'Dockerfile'), 'utf8')).match(/^CMD (\[.*\])$/m)?.[1]
  t.ok(cmd, 'the Dockerfile has an exec-form CMD')
  t.same(JSON.parse(cmd ?? '[]'), start.split(/\s+/))
  t.match(start, /--max-old-space-size=\d+/, 'the heap is bounded')
})

import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  filesTs: ['**/*.cts'],
  ignores: ['dist/**', 'node_modules/**', 'openapi/**', 'data/**', 'bench/results/**', '.tap/**', 'src/db/generated.ts', 'sdk/dist/**', 'sdk/src/schema.ts']
})

// The SDK runs in React Native and browsers as well as Node: nothing in sdk/src may reach for
// Node. dependency-cruiser (sdk-portable) refuses Node built-in imports; this also catches the globals.
import { readdir, readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import t from 'tap'
import ts from 'typescript'

const NODE_GLOBALS = new Set(['process', 'Buffer', 'global', 'require', 'module', '__dirname', '__filename', 'setImmediate', 'clearImmediate'])
const isNodeModule = (specifier: string) => specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])

/** Where a source file imports a Node module or uses a Node-only global (not as a property name or a declaration of its own). */
function nodeOnlyUses (fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true)
  const found: string[] = []
  const at = (node: ts.Node) => `${fileName}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
  function visit (node: ts.Node) {
    if (ts.isStringLiteral(node) && isNodeModule(node.text) &&
      (ts.isImportDeclaration(node.parent) || ts.isExportDeclaration(node.parent) || ts.isCallExpression(node.parent) || ts.isExternalModuleReference(node.parent))) {
      found.push(`${at(node)} imports ${node.text}`)
    }
    if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      const parent = node.parent
      const isPropertyName = (ts.isPropertyAccessExpression(parent) && parent.name === node && !(ts.isIdentifier(parent.expression) && parent.expression.text === 'globalThis')) ||
        ((ts.isPropertyAssignment(parent) || ts.isPropertySignature(parent) || ts.isMethodDeclaration(parent) || ts.isPropertyDeclaration(parent)) && parent.name === node)
      if (!isPropertyName) found.push(`${at(node)} uses ${node.text}`)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

t.test('the scanner finds Node imports and globals, and not their names as properties', async t => {
  const planted = [
    "import { readFile } from 'node:fs'",
    "import path from 'path'",
    "const fs = await import('node:fs/promises')",
    'const env = process.env.API_URL',
    "const bytes = Buffer.from('x')",
    'const p = globalThis.process',
    'setImmediate(() => {})',
    'const options = { process: 1, module: 2 }',
    'type T = { Buffer: string }',
    'options.process = 3'
  ].join('\n')
  t.same(nodeOnlyUses('planted.ts', planted).map(f => f.split(' ').slice(1).join(' ')), [
    'imports node:fs', 'imports path', 'imports node:fs/promises', 'uses process', 'uses Buffer', 'uses process', 'uses setImmediate'
  ])
})

t.test('sdk/src uses no Node-only module or global', async t => {
  const dir = new URL('../sdk/src/', import.meta.url)
  const files = (await readdir(dir, { recursive: true })).filter(f => f.endsWith('.ts'))
  t.ok(files.includes('index.ts') && files.includes('schema.ts'), 'scans the SDK sources, the generated types included')
  for (const file of files) {
    t.same(nodeOnlyUses(`sdk/src/${file}`, await readFile(new URL(file, dir), 'utf8')), [], `sdk/src/${file}`)
  }
})

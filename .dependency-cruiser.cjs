// The layers as rules (issue 11): routes -> services -> repositories -> database, no cycles.
// `npm run lint:layers`. Type-only imports count: a route typed by a repository row is coupled to it.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'routes-not-to-sql',
      comment: 'Routes call services; SQL (repositories, src/db) is reached only through them.',
      severity: 'error',
      from: { path: '^src/routes/' },
      to: { path: '^src/(repositories|db)/' }
    },
    {
      name: 'repositories-only-down',
      comment: 'Repositories hold SQL only: they never reach up into services, routes or plugins.',
      severity: 'error',
      from: { path: '^src/repositories/' },
      to: { path: '^src/(services|routes|plugins)/' }
    },
    {
      name: 'services-not-to-http',
      comment: 'Services hold the business rules, independent of HTTP: no routes, no plugins.',
      severity: 'error',
      from: { path: '^src/services/' },
      to: { path: '^src/(routes|plugins)/' }
    },
    {
      name: 'services-no-sql',
      comment: 'Every SQL statement lives in src/repositories (issue 11, item 1): services build no query, ' +
        'so they import no Kysely value (sql, expression builders) and no compiled-statement machinery; types are fine.',
      severity: 'error',
      from: { path: '^src/services/' },
      to: { path: '(^|/)node_modules/kysely/|^src/db/compiled-queries[.]ts$', dependencyTypesNot: ['type-only'] }
    },
    {
      name: 'plugins-through-services',
      comment: 'Plugins wire and expose services; they never run SQL of their own (types are fine).',
      severity: 'error',
      from: { path: '^src/plugins/' },
      to: { path: '^src/repositories/', dependencyTypesNot: ['type-only'] }
    },
    {
      name: 'sdk-portable',
      comment: 'The SDK runs in React Native and browsers as well as Node: no Node built-in modules (test/sdk-portable.test.ts checks the globals).',
      severity: 'error',
      from: { path: '^sdk/src/' },
      to: { dependencyTypes: ['core'] }
    },
    {
      name: 'sdk-self-contained',
      comment: 'The SDK is its own package: it imports nothing of the service; the generated types are its contract.',
      severity: 'error',
      from: { path: '^sdk/src/' },
      to: { path: '^(src|schemas)/' }
    },
    {
      name: 'no-circular',
      comment: 'No import cycle anywhere in src/, schemas/ or sdk/src/.',
      severity: 'error',
      from: { path: '^(src|schemas|sdk/src)/' },
      to: { circular: true }
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves (a typo or a missing dependency would otherwise hide an edge).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.cts', '.mts', '.js', '.cjs', '.mjs', '.json']
    },
    reporterOptions: { text: { highlightFocused: true } }
  }
}

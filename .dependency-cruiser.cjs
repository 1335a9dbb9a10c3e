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
      name: 'no-circular',
      comment: 'No import cycle anywhere in src/ or schemas/.',
      severity: 'error',
      from: { path: '^(src|schemas)/' },
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

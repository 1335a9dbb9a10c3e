import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely'

// src/db (tsx) and dist/src/db (built) both find the repository's db/migrations.
export const MIGRATIONS_DIR = ['../../db/migrations/', '../../../db/migrations/']
  .map(rel => fileURLToPath(new URL(rel, import.meta.url)))
  .find(dir => existsSync(dir)) ?? 'db/migrations'

/** Reads NNN_name.up.sql / NNN_name.down.sql pairs; Kysely's Migrator orders, locks and records them. */
export class SqlFileMigrationProvider implements MigrationProvider {
  constructor (private readonly dir: string) {}

  async getMigrations (): Promise<Record<string, Migration>> {
    const files = await readdir(this.dir)
    const migrations: Record<string, Migration> = {}
    for (const file of files.filter(f => f.endsWith('.up.sql')).sort()) {
      const name = file.slice(0, -'.up.sql'.length)
      const up = await readFile(path.join(this.dir, file), 'utf8')
      const downFile = path.join(this.dir, `${name}.down.sql`)
      const down = await readFile(downFile, 'utf8').catch(() => { throw new Error(`migration ${name} has no ${name}.down.sql`) })
      migrations[name] = {
        up: async db => { await sql.raw(up).execute(db) },
        down: async db => { await sql.raw(down).execute(db) }
      }
    }
    return migrations
  }
}

export function createMigrator (db: Kysely<any>, dir = MIGRATIONS_DIR) {
  return new Migrator({ db, provider: new SqlFileMigrationProvider(dir) })
}

export function assertMigrated ({ error, results }: MigrationResultSet) {
  const failed = results?.find(r => r.status === 'Error')
  if (error) {
    const cause = error instanceof Error ? error.message : String(error)
    throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${cause}`, { cause: error })
  }
  return results ?? []
}

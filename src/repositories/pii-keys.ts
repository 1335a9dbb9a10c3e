import { sql } from 'kysely'
import type { Executor } from '../db/types.js'

/** The key ids that have sealed personal data in this database, with their check values (migration 021). */
export function listPiiKeys (db: Executor) {
  return sql<{ kid: string, checkValue: string }>`select kid, check_value from pii_keys order by created_at, kid`.execute(db).then(r => r.rows)
}

/** Records a key id before anything is sealed under it (a second call changes nothing). */
export async function registerPiiKey (db: Executor, kid: string, checkValue: string) {
  await sql`insert into pii_keys (kid, check_value) values (${kid}, ${checkValue}) on conflict (kid) do nothing`.execute(db)
}

/** Forgets every key id but the current one (once rotation has left nothing under them). */
export async function forgetPiiKeysExcept (db: Executor, kid: string): Promise<string[]> {
  const { rows } = await sql<{ kid: string }>`delete from pii_keys where kid <> ${kid} returning kid`.execute(db)
  return rows.map(row => row.kid)
}

/**
 * A table holding sealed personal data, for rotation: its key columns (keyset order) and the
 * columns holding the data, each with its SQL type. Its rows are read with the data columns
 * aliased `raw_<column>`, so the row plugin hands them over as stored, not opened.
 */
export interface PiiTable {
  table: string
  keys: ReadonlyArray<readonly [name: string, type: string]>
  columns: ReadonlyArray<readonly [name: string, type: 'text' | 'jsonb']>
  /** Also written when a row is resealed (user_profiles: the phone's blind index). */
  derived?: ReadonlyArray<readonly [name: string, type: 'text']>
  /** A transaction setting the table's triggers ask for (the audit trail's app.pii_rotate). */
  setting?: string
}

export const PII_TABLES: readonly PiiTable[] = [
  { table: 'user_profiles', keys: [['user_id', 'uuid']], columns: [['phone', 'text'], ['bio', 'text']], derived: [['phone_index', 'text']] },
  { table: 'user_sessions', keys: [['id', 'uuid']], columns: [['ip', 'text'], ['user_agent', 'text']] },
  { table: 'user_audit_log', keys: [['seq', 'bigint']], columns: [['ip', 'text'], ['user_agent', 'text'], ['changes', 'jsonb']], setting: 'app.pii_rotate' },
  { table: 'events', keys: [['seq', 'bigint']], columns: [['data', 'jsonb']] },
  { table: 'idempotency_keys', keys: [['scope', 'text'], ['key', 'text']], columns: [['body', 'text']] }
]

export type PiiBatchRow = Record<string, unknown>

/** Up to `limit` rows after the keyset position `after` (null: from the first), in key order, with their data as stored. */
export async function readPiiBatch (db: Executor, spec: PiiTable, after: unknown[] | null, limit: number): Promise<PiiBatchRow[]> {
  const keys = sql.join(spec.keys.map(([name]) => sql.ref(name)))
  const position = after ? sql`(${keys}) > (${sql.join(after)})` : sql`true`
  const data = sql.join(spec.columns.map(([name]) => sql`${sql.ref(name)} as ${sql.ref(`raw_${name}`)}`))
  const { rows } = await sql<PiiBatchRow>`select ${keys}, ${data} from ${sql.table(spec.table)}
    where ${position} order by ${keys} limit ${limit}`.execute(db)
  return rows
}

/**
 * Writes resealed values, each only where the row still holds what was read (`old_<column>`): a
 * row changed meanwhile was written under the current key by the service and is left alone.
 * Resolves to how many rows were written.
 */
export async function writePiiBatch (db: Executor, spec: PiiTable, rows: PiiBatchRow[]): Promise<number> {
  if (rows.length === 0) return 0
  const write = async (trx: Executor) => {
    if (spec.setting) await sql`select set_config(${spec.setting}, 'on', true)`.execute(trx)
    const all = [...spec.keys, ...spec.columns, ...spec.columns.map(([name, type]) => [`old_${name}`, type] as const), ...spec.derived ?? []]
    const record = sql.raw(all.map(([name, type]) => `"${name}" ${type}`).join(', '))
    const set = sql.join([...spec.columns, ...spec.derived ?? []].map(([name]) => sql`${sql.ref(name)} = x.${sql.ref(name)}`))
    const match = sql.join([
      ...spec.keys.map(([name]) => sql`t.${sql.ref(name)} = x.${sql.ref(name)}`),
      ...spec.columns.map(([name]) => sql`t.${sql.ref(name)} is not distinct from x.${sql.ref(`old_${name}`)}`)
    ], sql` and `)
    const result = await sql`update ${sql.table(spec.table)} t set ${set}
      from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(${record}) where ${match}`.execute(trx)
    return Number(result.numAffectedRows ?? 0)
  }
  return db.isTransaction ? write(db) : db.transaction().execute(write)
}

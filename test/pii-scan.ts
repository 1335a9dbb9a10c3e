import { sql, type Kysely } from 'kysely'

export interface Trace { table: string, column: string, needle: string }

// Every column that can hold text: strings, JSON, bytes and arrays of them, in every schema but the catalog's.
const TEXT_TYPES = ['text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'ARRAY', 'USER-DEFINED']

/**
 * Where any of the needles occurs in the database: every text, varchar, jsonb, json, bytea and
 * array column of every table of every schema (pg-boss's included), compared case-insensitively
 * (bytea: the needle's UTF-8 bytes, as given or lower-cased). The tables are read from information_schema, so a table
 * added later is scanned too. Needles must be distinctive (a random part): a scan finds
 * substrings.
 */
export async function findTraces (db: Kysely<any>, needles: string[]): Promise<Trace[]> {
  // Without the app's camel-case plugin: the names come from the catalog as they are.
  db = db.withoutPlugins()
  const wanted = [...new Set(needles.filter(n => n.length > 0))]
  const columns = await sql<{ schema: string, table: string, column: string, type: string }>`
    select c.table_schema as schema, c.table_name as table, c.column_name as column, c.data_type as type
    from information_schema.columns c join information_schema.tables t using (table_schema, table_name)
    where t.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema') and c.table_schema not like 'pg_toast%'
      and c.data_type = any(${TEXT_TYPES}::text[])
    order by 1, 2, 3`.execute(db)
  const traces: Trace[] = []
  for (const { schema, table, column, type } of columns.rows) {
    const ref = sql.ref(`${schema}.${table}.${column}`)
    const match = type === 'bytea'
      ? sql`position(convert_to(n, 'UTF8') in ${ref}) > 0 or position(convert_to(lower(n), 'UTF8') in ${ref}) > 0`
      : sql`strpos(lower(${ref}::text), lower(n)) > 0`
    const found = await sql<{ needle: string }>`
      select n as needle from unnest(${wanted}::text[]) as n
      where exists (select 1 from ${sql.table(`${schema}.${table}`)} where ${match})`.execute(db)
    for (const { needle } of found.rows) traces.push({ table: `${schema}.${table}`, column, needle })
  }
  return traces
}

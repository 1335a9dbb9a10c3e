import { CamelCasePlugin, type PluginTransformResultArgs, type QueryResult, type UnknownRow } from 'kysely'
import type { PiiKeyring } from '../lib/secret-box.js'
import { PII_COLUMNS, type PiiTransform } from './pii-fields.js'
import type { Executor } from './types.js'

type Opener = ((value: unknown, transform: PiiTransform) => unknown) | undefined

/**
 * Kysely's CamelCasePlugin rebuilds every row through Object.keys and reduce and copies every
 * array value: on a 20-row list, a tenth of the request's garbage. The rows of one result share
 * their columns, so this maps the names once per result and copies values straight across.
 * Objects (jsonb, arrays of them) still go through the plugin's own mapping.
 *
 * With PII_ENCRYPTION_KEYS it is also the one place where personal data encrypted at rest is
 * opened (src/db/pii-fields.ts says which columns hold it): every read, Kysely's and the compiled
 * statements' alike, passes here, and only the columns a statement returns are opened.
 */
export class RowsCamelCasePlugin extends CamelCasePlugin {
  private readonly open?: PiiTransform

  constructor (readonly pii?: PiiKeyring) {
    super()
    if (pii) this.open = (value, field) => pii.open(value, field)
  }

  override async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const rows = args.result.rows
    if (!Array.isArray(rows) || rows.length === 0) return args.result
    const columns = Object.keys(rows[0])
    const names = columns.map(column => this.camelCase(column))
    const openers = this.openersOf(columns)
    const mapped = rows.map(row => {
      const out: UnknownRow = {}
      for (let i = 0; i < columns.length; i++) out[names[i]] = this.mapValue(row[columns[i]], openers?.[i])
      return out
    })
    return { ...args.result, rows: mapped }
  }

  /**
   * Rows that pg gave as arrays of values (rowMode 'array'), in the order of `columns`: one
   * object per row is made, instead of pg's own and then its camelCase copy.
   */
  rowsFromArrays (columns: readonly string[], rows: readonly unknown[][]): UnknownRow[] {
    const names = columns.map(column => this.camelCase(column))
    const openers = this.openersOf(columns)
    return rows.map(values => {
      const out: UnknownRow = {}
      for (let i = 0; i < names.length; i++) out[names[i]] = this.mapValue(values[i], openers?.[i])
      return out
    })
  }

  /** Per column, how to open its personal data; undefined (nothing to do) without keys. */
  private openersOf (columns: readonly string[]): Opener[] | undefined {
    if (!this.open) return undefined
    const openers = columns.map(column => PII_COLUMNS[column])
    return openers.some(Boolean) ? openers : undefined
  }

  private mapValue (value: unknown, opener: Opener) {
    if (opener && value !== null) value = opener(value, this.open!)
    return mapsAsIs(value) ? value : this.mapRow({ value }).value
  }
}

/** Scalars, dates, buffers and arrays of scalars (a text[] column) have no keys to rename. */
function mapsAsIs (value: unknown): boolean {
  if (value === null || typeof value !== 'object' || value instanceof Date || ArrayBuffer.isView(value)) return true
  return Array.isArray(value) && value.every(item => item === null || typeof item !== 'object')
}

const keyrings = new WeakMap<object, PiiKeyring | null>()

/**
 * The PII keyring of the database a query runs on (undefined: PII_ENCRYPTION_KEYS is not set), so
 * the repositories that write personal data seal it with the keys of the very database handle
 * whose reads open it. Transactions share their database's executor plugins.
 */
export function piiKeyringOf (db: Executor): PiiKeyring | undefined {
  const executor = db.getExecutor()
  let keyring = keyrings.get(executor)
  if (keyring === undefined) {
    const plugin = executor.plugins.find(p => p instanceof RowsCamelCasePlugin) as RowsCamelCasePlugin | undefined
    keyring = plugin?.pii ?? null
    keyrings.set(executor, keyring)
  }
  return keyring ?? undefined
}

import { ConfigError } from '../config.js'
import type { Executor } from '../db/types.js'
import { PII_COLUMNS, type PiiField, type PiiTransform } from '../db/pii-fields.js'
import { PII_PREFIX, type PiiKeyring } from '../lib/secret-box.js'
import { phoneIndexOf, piiKeyringOf } from '../repositories/pii.js'
import { PII_TABLES, forgetPiiKeysExcept, listPiiKeys, readPiiBatch, registerPiiKey, writePiiBatch, type PiiBatchRow } from '../repositories/pii-keys.js'

/**
 * At start, before anything is read or written: refuses (ConfigError, naming PII_ENCRYPTION_KEYS)
 * a keyring that lacks a key id under which data is sealed here, holds a different key under a
 * known id, or is missing while sealed data exists; then records the current key id, so that
 * every id that ever sealed anything is known (pii_keys, migration 021).
 */
export async function assertPiiKeys (db: Executor): Promise<void> {
  const pii = piiKeyringOf(db)
  const stored = await listPiiKeys(db)
  if (!pii) {
    if (stored.length > 0) {
      throw new ConfigError(`PII_ENCRYPTION_KEYS is not set, but this database holds personal data sealed under key id(s) ${stored.map(k => `"${k.kid}"`).join(', ')}: configure those keys`)
    }
    return
  }
  const missing = stored.filter(k => !pii.kids.includes(k.kid))
  if (missing.length > 0) {
    throw new ConfigError(`PII_ENCRYPTION_KEYS lacks key id(s) ${missing.map(k => `"${k.kid}"`).join(', ')}, under which this database holds personal data: add them after the current key (run npm run pii:rotate before removing a key)`)
  }
  const wrong = stored.filter(k => pii.checkOf(k.kid) !== k.checkValue)
  if (wrong.length > 0) {
    throw new ConfigError(`PII_ENCRYPTION_KEYS: the key given for id(s) ${wrong.map(k => `"${k.kid}"`).join(', ')} is not the key that sealed this database's data`)
  }
  await registerPiiKey(db, pii.currentKid, pii.checkOf(pii.currentKid)!)
}

/** Per table: rows read, values resealed from an older key or sealed from clear, rows written, rows left because the service changed them meanwhile. */
export interface RotationCounts { table: string, scanned: number, resealed: number, sealedFromClear: number, rowsWritten: number, changedMeanwhile: number }

/** Seals a value not under the current key yet (a clear one, or one under an older key). */
function resealer (pii: PiiKeyring, counts: RotationCounts): PiiTransform {
  return (value: string, field: PiiField) => {
    if (pii.isCurrent(value)) return value
    if (value.startsWith(PII_PREFIX)) counts.resealed++
    else counts.sealedFromClear++
    return pii.seal(pii.open(value, field), field)
  }
}

const plain = (value: unknown) => typeof value === 'bigint' ? String(value) : value
const camel = (name: string) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

/**
 * `npm run pii:rotate`: every sealed value not under the current key (and every clear value, when
 * the keys are first configured) sealed under the current key, table by table in key order,
 * `batchSize` rows a transaction. Safe while the service runs: nothing is locked beyond a batch's
 * own update, and a row the service changed since it was read (then written under the current
 * key) is left as it is. Idempotent: a second run finds nothing to do. When nothing is left under
 * an older key, those key ids are forgotten (pii_keys) and the key can leave PII_ENCRYPTION_KEYS.
 */
export async function rotatePii (db: Executor, options: { batchSize?: number, onBatch?: (counts: RotationCounts) => void } = {}) {
  const pii = piiKeyringOf(db)
  if (!pii) throw new ConfigError('PII_ENCRYPTION_KEYS is not set: there is no key to seal under')
  await assertPiiKeys(db)
  const batchSize = options.batchSize ?? 500
  const results: RotationCounts[] = []
  for (const spec of PII_TABLES) {
    const counts: RotationCounts = { table: spec.table, scanned: 0, resealed: 0, sealedFromClear: 0, rowsWritten: 0, changedMeanwhile: 0 }
    const reseal = resealer(pii, counts)
    let after: unknown[] | null = null
    for (;;) {
      const rows = await readPiiBatch(db, spec, after, batchSize)
      if (rows.length === 0) break
      counts.scanned += rows.length
      const changed: PiiBatchRow[] = []
      for (const row of rows) {
        const out: PiiBatchRow = {}
        let dirty = false
        for (const [name] of spec.keys) out[name] = plain(row[camel(name)])
        for (const [name] of spec.columns) {
          const stored = row[camel(`raw_${name}`)]
          const fresh = stored === null ? null : PII_COLUMNS[name](typeof stored === 'object' ? structuredClone(stored) : stored, reseal)
          if (JSON.stringify(fresh) !== JSON.stringify(stored)) dirty = true
          out[name] = fresh
          out[`old_${name}`] = stored
        }
        if (!dirty) continue
        if (spec.derived) out.phone_index = phoneIndexOf(pii, typeof out.phone === 'string' ? pii.open(out.phone, 'phone') : null)
        changed.push(out)
      }
      const written = await writePiiBatch(db, spec, changed)
      counts.rowsWritten += written
      counts.changedMeanwhile += changed.length - written
      after = spec.keys.map(([name]) => plain(rows[rows.length - 1][camel(name)]))
      options.onBatch?.(counts)
      if (rows.length < batchSize) break
    }
    results.push(counts)
  }
  const forgotten = results.every(r => r.changedMeanwhile === 0) ? await forgetPiiKeysExcept(db, pii.currentKid) : []
  return { currentKid: pii.currentKid, tables: results, forgottenKids: forgotten }
}

import { piiKeyringOf } from '../db/camel-case.js'
import { PII_COLUMNS, type PiiTransform } from '../db/pii-fields.js'
import type { Executor } from '../db/types.js'
import type { PiiKeyring } from '../lib/secret-box.js'

/**
 * The write side of personal data at rest: what the repositories store is sealed here with the
 * keyring of the database handle they write to (none: stored as given). The read side is the row
 * plugin (src/db/camel-case.ts), through the same column map (src/db/pii-fields.ts).
 */
export function piiSealer (db: Executor) {
  const pii = piiKeyringOf(db)
  if (!pii) return undefined
  const seal: PiiTransform = (value, field) => pii.seal(value, field)
  return {
    pii,
    /** A text column's value (`ip`, `user_agent`, `phone`, `bio`, `body`), sealed under the current key. */
    text: <T extends string | null | undefined>(column: 'ip' | 'user_agent' | 'phone' | 'bio' | 'body', value: T): T =>
      typeof value === 'string' ? PII_COLUMNS[column](value, seal) as T : value,
    /** A jsonb column's value (`changes`, `profile`), a sealed copy (the caller's object is left as it is). */
    json: <T>(column: 'changes' | 'profile', value: T): T =>
      value === null || value === undefined ? value : PII_COLUMNS[column](structuredClone(value), seal) as T
  }
}

export type PiiSealer = NonNullable<ReturnType<typeof piiSealer>>

/** The blind index of a phone as stored beside its sealed value (null without keys or phone). */
export function phoneIndexOf (pii: PiiKeyring | undefined, phone: string | null | undefined) {
  return pii && typeof phone === 'string' ? pii.phoneIndex(phone) : null
}

export { piiKeyringOf }

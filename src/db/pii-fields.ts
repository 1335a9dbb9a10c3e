/**
 * Where personal data encrypted at rest (PII_ENCRYPTION_KEYS) lives, by column name as PostgreSQL
 * returns it: the one map that the read path (the row plugin, src/db/camel-case.ts) opens through
 * and `npm run pii:rotate` seals through. Each value is sealed under its field's name (the aad),
 * not its table's, because the database copies values as they are: a profile's sealed phone goes
 * into the users read model (003), an event's user snapshot (013) and an audit row's changes.
 */
export type PiiField = 'phone' | 'bio' | 'ip' | 'user_agent' | 'idempotency_body'

/** Seals or opens one value of a field. */
export type PiiTransform = (value: string, field: PiiField) => string

const PROFILE_FIELDS = ['phone', 'bio'] as const

/** A profile object ({ phone, bio, ... }), changed in place. */
function mapProfile (profile: unknown, transform: PiiTransform) {
  if (profile === null || typeof profile !== 'object') return
  const record = profile as Record<string, unknown>
  for (const field of PROFILE_FIELDS) {
    const value = record[field]
    if (typeof value === 'string') record[field] = transform(value, field)
  }
}

/** An audit row's changes: only `profile: { from, to }` holds personal data. */
function mapChanges (changes: unknown, transform: PiiTransform) {
  if (changes === null || typeof changes !== 'object') return
  const profile = (changes as Record<string, unknown>).profile as { from?: unknown, to?: unknown } | undefined
  if (profile === null || typeof profile !== 'object') return
  mapProfile(profile.from, transform)
  mapProfile(profile.to, transform)
}

/** An event's data: the user snapshot's profile and the audit changes it carries. */
function mapEventData (data: unknown, transform: PiiTransform) {
  if (data === null || typeof data !== 'object') return
  const record = data as Record<string, unknown>
  if (record.user !== null && typeof record.user === 'object') mapProfile((record.user as Record<string, unknown>).profile, transform)
  mapChanges(record.changes, transform)
}

const text = (field: PiiField) => (value: unknown, transform: PiiTransform) => typeof value === 'string' ? transform(value, field) : value
const inPlace = (map: (value: unknown, transform: PiiTransform) => void) => (value: unknown, transform: PiiTransform) => {
  map(value, transform)
  return value
}

/**
 * Column (as returned: snake_case, aliases included) → how its personal data is reached. Objects
 * are changed in place: the read path owns the rows it maps; rotation maps a copy.
 */
export const PII_COLUMNS: Readonly<Record<string, (value: unknown, transform: PiiTransform) => unknown>> = {
  phone: text('phone'),
  bio: text('bio'),
  ip: text('ip'),
  user_agent: text('user_agent'),
  body: text('idempotency_body'),
  profile: inPlace(mapProfile),
  changes: inPlace(mapChanges),
  data: inPlace(mapEventData),
  event_data: inPlace(mapEventData)
}

/** What the services and plugins report to Prometheus (plugins/app/metrics.ts keeps the series). */
export interface AppMetrics {
  /** A statement's duration, by its kind (select, insert, update, delete, other). */
  observeQuery (sql: string, seconds: number): void
  rateLimited (budget: 'api' | 'auth' | 'user'): void
  login (outcome: 'success' | 'failure' | 'locked' | 'mfa_required'): void
  refreshRotated (): void
  refreshReused (): void
  /** The breached-password check did not answer (timeout) or failed (error): the password was let through. */
  breachCheckFailed (reason: 'timeout' | 'error'): void
  /** A lag-tolerant read (lists, audit, exports) and where it ran. */
  lagTolerantRead (target: 'replica' | 'primary'): void
  /** Rows a retention run purged, by kind (services/retention.ts). */
  retentionPurged (kind: string, rows: number): void
  /** A retention run finished on this instance. */
  retentionRan (at: Date): void
}

/** For code run outside an app (the CLI, a service built in a test): reports nothing. */
export const NO_METRICS: AppMetrics = {
  observeQuery () {},
  rateLimited () {},
  login () {},
  refreshRotated () {},
  refreshReused () {},
  breachCheckFailed () {},
  lagTolerantRead () {},
  retentionPurged () {},
  retentionRan () {}
}

const KINDS = ['select', 'insert', 'update', 'delete'] as const
export type StatementKind = typeof KINDS[number] | 'other'

/** A statement's kind: its first word, or for a CTE the first data-changing word in it. */
export function statementKind (sql: string): StatementKind {
  const first = /^\s*\(?\s*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase()
  if (first === 'with') return (/\b(insert|update|delete)\b/i.exec(sql)?.[1]?.toLowerCase() as StatementKind | undefined) ?? 'select'
  return KINDS.find(kind => kind === first) ?? 'other'
}

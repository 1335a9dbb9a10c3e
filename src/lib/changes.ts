/** What changed between two representations, for an audit row: `{ key: { from, to } }` for each key that differs. */
export function changesBetween<T extends object> (before: T, after: T, keys: ReadonlyArray<keyof T & string>) {
  const changes: Record<string, { from: unknown, to: unknown }> = {}
  for (const key of keys) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) changes[key] = { from: before[key], to: after[key] }
  }
  return changes
}

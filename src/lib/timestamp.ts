/**
 * A date-time that passed the request schema (RFC 3339) as a Date. RFC 3339 allows a leap
 * second (23:59:60), which a Date cannot hold: it is read as the second after, as PostgreSQL
 * reads it, instead of becoming an Invalid Date that fails the query.
 */
export function dateOf (timestamp: string): Date {
  const date = new Date(timestamp)
  if (!Number.isNaN(date.getTime())) return date
  return new Date(new Date(timestamp.replace(/([T ]\d\d:\d\d:)60/i, '$159')).getTime() + 1000)
}

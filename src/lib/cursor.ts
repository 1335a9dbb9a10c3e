import { createHash } from 'node:crypto'
import { validationError } from '../errors.js'

export interface CursorPosition { value: string, id: string }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A short fingerprint of the sort and filters, so a cursor is only valid for the list that made it. */
export function listFingerprint (parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16)
}

export function encodeCursor (fingerprint: string, position: CursorPosition): string {
  return Buffer.from(JSON.stringify([fingerprint, position.value, position.id])).toString('base64url')
}

export function decodeCursor (cursor: string, fingerprint: string): CursorPosition {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || typeof parsed[1] !== 'string' || typeof parsed[2] !== 'string' || !UUID.test(parsed[2])) {
    throw validationError('The cursor is malformed', [{ field: 'cursor', message: 'is malformed' }])
  }
  if (parsed[0] !== fingerprint) {
    throw validationError('The cursor belongs to a different sort or filter', [{ field: 'cursor', message: 'does not match the sort and filters' }])
  }
  return { value: parsed[1], id: parsed[2] }
}

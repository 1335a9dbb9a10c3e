import { sql, type Transaction } from 'kysely'
import type { Database } from '../db/types.js'

/**
 * Runs work in a savepoint of the caller's transaction: when it throws, only its own writes are
 * undone and the transaction can go on (an atomic batch checks every operation before it decides).
 */
export async function inSavepoint<T> (trx: Transaction<Database>, work: () => Promise<T>): Promise<T> {
  await sql`savepoint item`.execute(trx)
  try {
    const result = await work()
    await sql`release savepoint item`.execute(trx)
    return result
  } catch (err) {
    await sql`rollback to savepoint item`.execute(trx)
    throw err
  }
}

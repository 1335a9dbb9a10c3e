import type { Transaction } from 'kysely'
import type { Database } from '../db/types.js'
import { conflict } from '../errors.js'
import { countAdministrators } from '../repositories/administrators.js'

/** Run last in a transaction that holds lockAdministrators: the change must leave someone able to administer. */
export async function assertAdministratorRemains (trx: Transaction<Database>) {
  if (await countAdministrators(trx) === 0) throw conflict('This change would leave no active administrator')
}

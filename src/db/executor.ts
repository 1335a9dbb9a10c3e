import type { Kysely, Transaction } from 'kysely'
import type { Database } from './types.js'

/** What every repository function runs on: the database, or a transaction of it. */
export type Executor = Kysely<Database> | Transaction<Database>

import type { DB } from '../db/connect.js'
import { AppError, batchFailed, clientFailure, itemError, validationError } from '../errors.js'
import { INVALID_REQUEST, type BodyCheck } from '../lib/validation.js'
import { inSavepoint } from '../repositories/savepoints.js'
import type { BatchOp, UserBatch, UserBatchOperation, UserBatchResult } from '../../schemas/user-bulk.js'
import type { User, UserCreate, UserPatch } from '../../schemas/user.js'
import { authorizeActor, type RequestContext } from './context.js'
import { USER_ACCESS } from './user-access.js'
import type { UsersService, Write } from './users.js'

/** The single requests' own body and path checks (their route schemas, their compiler). */
export interface BatchChecks { create: BodyCheck, patch: BodyCheck, id: BodyCheck }

/** The status each single request answers when it succeeds. */
const SUCCESS_STATUS: Record<BatchOp, number> = { create: 201, update: 200, delete: 204, restore: 200 }

type Outcome = { ok: true, data: User | undefined } | { ok: false, error: AppError }

export function createUsersBatchService ({ db, users, checks }: { db: DB, users: UsersService, checks: BatchChecks }) {
  /**
   * One operation checked as its single request is (its path and body, then its permission, then
   * the service's own checks) and prepared (a new password hashed), outside any transaction.
   */
  async function prepare (ctx: RequestContext, { op, id, body }: UserBatchOperation): Promise<Write<User | void>> {
    if (op === 'create' ? id !== undefined : body !== undefined && op !== 'update') {
      throw validationError(INVALID_REQUEST, [{ field: op === 'create' ? 'id' : 'body', message: `is not allowed for ${op}` }])
    }
    if (op !== 'create') checks.id({ id })
    if (op === 'create') checks.create(body)
    if (op === 'update') checks.patch(body)
    authorizeActor(ctx.actor, USER_ACCESS[op], id)
    switch (op) {
      case 'create': return users.writes.create(ctx, body as UserCreate)
      case 'update': return users.writes.patch(ctx, id!, body as UserPatch)
      case 'delete': return users.writes.remove(ctx, id!)
      case 'restore': return users.writes.restore(ctx, id!)
    }
  }

  async function settle (work: () => Promise<User | void>): Promise<Outcome> {
    try {
      return { ok: true, data: (await work()) ?? undefined }
    } catch (err) {
      return { ok: false, error: clientFailure(err) }
    }
  }

  return {
    /**
     * Not atomic: each operation in order, in its own transaction, as its single request would be.
     * Atomic: every operation in one transaction, each in a savepoint so that all are tried; when
     * any failed, the transaction is rolled back and the answer names each failure.
     */
    async run (ctx: RequestContext, batch: UserBatch): Promise<UserBatchResult[]> {
      // Checks and password hashing read no data, so every operation is prepared first (hashes in parallel).
      const prepared = await Promise.all(batch.operations.map(async operation => {
        try { return await prepare(ctx, operation) } catch (err) { return clientFailure(err) }
      }))
      const outcomes: Outcome[] = []
      if (!batch.atomic) {
        for (const write of prepared) {
          outcomes.push(write instanceof AppError ? { ok: false, error: write } : await settle(() => db.transaction().execute(write)))
        }
      } else {
        await db.transaction().execute(async trx => {
          for (const write of prepared) {
            outcomes.push(write instanceof AppError ? { ok: false, error: write } : await settle(() => inSavepoint(trx, () => write(trx))))
          }
          const failures = outcomes.flatMap((outcome, index) => outcome.ok ? [] : [{ index, error: outcome.error }])
          if (failures.length > 0) throw batchFailed(failures)
        })
      }
      return outcomes.map((outcome, index) => outcome.ok
        ? { index, status: SUCCESS_STATUS[batch.operations[index].op], ...(outcome.data ? { data: outcome.data } : {}) }
        : { index, status: outcome.error.statusCode, error: itemError(outcome.error) })
    }
  }
}

export type UsersBatchService = ReturnType<typeof createUsersBatchService>

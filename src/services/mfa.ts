import { randomBytes } from 'node:crypto'
import type { Transaction } from 'kysely'
import type { Config } from '../config.js'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { DB } from '../db/connect.js'
import type { Database } from '../db/types.js'
import { AppError, conflict, forbidden, invalidMfaCode, notFound, unauthorized, validationError } from '../errors.js'
import { NO_METRICS, type AppMetrics } from '../lib/app-metrics.js'
import type { AttemptOutcome } from '../lib/login-attempts.js'
import { createSecretBox } from '../lib/secret-box.js'
import { newTotpSecret, qrSvg, totpTimeStep, totpUri } from '../lib/totp.js'
import { insertAudit } from '../repositories/audit.js'
import * as mfa from '../repositories/mfa.js'
import { deleteUserPasskeys } from '../repositories/passkeys.js'
import { revokeSessions } from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
import type { MfaMethod, MfaStatus } from '../../schemas/mfa.js'
import type { AuthenticationResponse, Passkey } from '../../schemas/passkeys.js'
import type { LoginGuard } from './login-throttle.js'
import type { RequestContext } from './context.js'

const RECOVERY_CODE_COUNT = 10
// Crockford's base32 without the look-alikes: 10 characters are 50 random bits.
const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/** A code as typed back: case, spaces and the dash do not matter. */
const normalizeRecoveryCode = (code: string) => code.toLowerCase().replace(/[\s-]/g, '')

function newRecoveryCode () {
  const chars = [...randomBytes(10)].map(byte => RECOVERY_ALPHABET[byte % 32])
  return `${chars.slice(0, 5).join('')}-${chars.slice(5).join('')}`
}

/** A second factor as presented: a TOTP code or a recovery code. */
export type SecondFactor = { totp: string } | { recoveryCode: string } | { passkey: AuthenticationResponse }
type CodeMethod = MfaMethod

/** `{ code }` of the management routes: six digits are a TOTP code, anything else a recovery code. */
const factorOfCode = (code: string): SecondFactor => /^\s*\d{6}\s*$/.test(code) ? { totp: code.trim() } : { recoveryCode: code }

/** The second factors a login of this user can be completed with. */
export function methodsOf (state: { totp: boolean, recoveryCodesLeft: number, passkeys: boolean }): MfaMethod[] {
  const methods: MfaMethod[] = []
  if (state.totp) methods.push('totp')
  if (state.totp && state.recoveryCodesLeft > 0) methods.push('recovery_code')
  if (state.passkeys) methods.push('passkey')
  return methods
}

export interface MfaServiceDeps {
  db: DB
  compiled: CompiledQueries
  config: Config
  loginGuard: LoginGuard
  /** The passkeys service's side of a passkey as second factor (it is built after this one). */
  passkeys: {
    verifyAssertion (by: { mfaUserId: string }, response: AuthenticationResponse): Promise<{ ok: boolean }>
    list (userId: string): Promise<Passkey[]>
  }
  metrics?: AppMetrics
}

/**
 * TOTP enrolment, recovery codes, and the check of a second factor. The TOTP secret is sealed
 * (AES-256-GCM) before it reaches the database and leaves the service only in the setup answer;
 * recovery codes only in the answer that makes them.
 */
export function createMfaService ({ db, compiled, config, loginGuard, passkeys, metrics = NO_METRICS }: MfaServiceDeps) {
  const box = createSecretBox(config.mfaEncryptionKey)

  async function actorAccount (ctx: RequestContext) {
    if (!ctx.actor) throw unauthorized()
    const user = await users.findUserById(db, compiled, ctx.actor.id)
    if (!user) throw unauthorized()
    return { userId: user.id, email: user.email }
  }

  /** Spends the factor if it is right and unused: the TOTP step moves forward, or the recovery code is marked used. */
  async function spendFactor (trx: Transaction<Database>, userId: string, factor: Exclude<SecondFactor, { passkey: unknown }>): Promise<boolean> {
    if ('recoveryCode' in factor) return mfa.spendRecoveryCode(trx, userId, box.hash(normalizeRecoveryCode(factor.recoveryCode)))
    const totp = await mfa.findTotp(trx, userId)
    if (!totp?.confirmedAt) return false
    const last = totp.lastTimeStep === null ? null : Number(totp.lastTimeStep)
    const step = await totpTimeStep(box.open(totp.secretSealed, userId), factor.totp, last)
    // Two requests with the same code: the second waits for the first's row lock, then finds the step taken.
    return step !== undefined && await mfa.acceptTimeStep(trx, userId, step)
  }

  /**
   * Runs `then` in the transaction that spends the factor, when the factor is right. The check is
   * a login attempt of the account (LoginGuard): a locked account is 429 whatever the code, a wrong
   * code counts toward the lockout (401 INVALID_MFA_CODE, an auth.mfa_failed row), a right one
   * clears the count. `claim`, when given, runs first in the same transaction (the mfaToken is spent
   * there): a request that loses that race fails on it, without its code counting as a wrong one.
   * When either throws, nothing is spent and nothing counted.
   */
  async function withSecondFactor<T> (ctx: RequestContext, account: { userId: string, email: string }, factor: SecondFactor,
    then: (trx: Transaction<Database>, method: CodeMethod) => Promise<T>, claim?: (trx: Transaction<Database>) => Promise<void>): Promise<T> {
    const method: CodeMethod = 'totp' in factor ? 'totp' : 'passkey' in factor ? 'passkey' : 'recovery_code'
    const attempt = await loginGuard.begin(account.email, ctx).catch(err => { metrics.login('locked'); throw err })
    let outcome: AttemptOutcome = 'abandoned'
    try {
      // A passkey's challenge and counter are spent by the passkeys service on its own, before the
      // transaction (the embedded database has one connection: inside it, that would wait forever).
      const passkeyOk = 'passkey' in factor && (await passkeys.verifyAssertion({ mfaUserId: account.userId }, factor.passkey)).ok
      const value = await db.transaction().execute(async trx => {
        await claim?.(trx)
        // Thrown, so that the transaction rolls back what claim did.
        if (!('passkey' in factor ? passkeyOk : await spendFactor(trx, account.userId, factor))) throw invalidMfaCode()
        return then(trx, method)
      }).catch(async err => {
        if (!(err instanceof AppError && err.code === 'INVALID_MFA_CODE')) throw err
        outcome = 'failed'
        metrics.login('failure')
        await insertAudit(db, ctx, { action: 'auth.mfa_failed', userId: account.userId, changes: { method } })
        throw err
      })
      outcome = 'passed'
      return value
    } finally {
      if (await attempt.end(outcome)) await insertAudit(db, ctx, { action: 'auth.lockout', userId: account.userId, changes: { failures: config.loginMaxFailures } })
    }
  }

  async function assertTotpEnabled (userId: string) {
    const state = await mfa.findMfaState(db, userId)
    if (!state.totp) throw conflict('TOTP is not enabled')
  }

  const newRecoveryCodes = () => Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode)
  const storeRecoveryCodes = (trx: Transaction<Database>, userId: string, codes: string[]) =>
    mfa.replaceRecoveryCodes(trx, userId, codes.map(code => box.hash(normalizeRecoveryCode(code))))

  return {
    withSecondFactor,

    /** Whether the user has a second factor, and which: what login() asks before issuing tokens. */
    async enrolledMethods (userId: string): Promise<MfaMethod[]> {
      return methodsOf(await mfa.findMfaState(db, userId))
    },

    async status (ctx: RequestContext): Promise<MfaStatus> {
      if (!ctx.actor) throw unauthorized()
      const state = await mfa.findMfaState(db, ctx.actor.id)
      return { totp: state.totp, recoveryCodesLeft: state.recoveryCodesLeft, passkeys: await passkeys.list(ctx.actor.id) }
    },

    /** A new secret, not active until confirmed; it replaces an unconfirmed one. With TOTP active: 409. */
    async setupTotp (ctx: RequestContext) {
      const { userId, email } = await actorAccount(ctx)
      const secret = newTotpSecret()
      if (!await mfa.upsertPendingTotp(db, userId, box.seal(secret, userId))) {
        throw conflict('TOTP is already enabled; disable it before setting up another authenticator')
      }
      const otpauthUrl = totpUri(secret, config.mfaIssuer, email)
      return { secret, otpauthUrl, qrSvg: await qrSvg(otpauthUrl) }
    },

    /** Activates the pending secret with a code it produced; answers the recovery codes, this once. */
    async confirmTotp (ctx: RequestContext, code: string) {
      const { userId } = await actorAccount(ctx)
      const totp = await mfa.findTotp(db, userId)
      if (!totp) throw conflict('Set up TOTP first (POST /auth/mfa/totp/setup)')
      if (totp.confirmedAt) throw conflict('TOTP is already enabled')
      const step = await totpTimeStep(box.open(totp.secretSealed, userId), code.trim())
      if (step === undefined) throw validationError('The code does not match the authenticator', [{ field: 'code', message: 'is not a current code of the authenticator being set up' }])
      const recoveryCodes = newRecoveryCodes()
      await db.transaction().execute(async trx => {
        // The secret checked, not one a concurrent setup put in its place; its step is spent already.
        if (!await mfa.confirmTotp(trx, userId, totp.secretSealed, step)) throw conflict('The TOTP setup changed meanwhile; set it up again')
        await storeRecoveryCodes(trx, userId, recoveryCodes)
        await insertAudit(trx, ctx, { action: 'auth.mfa_enabled', userId, changes: { method: 'totp', recoveryCodes: RECOVERY_CODE_COUNT } })
      })
      return { recoveryCodes }
    },

    /** Removes TOTP and the recovery codes, on a TOTP or recovery code (checked as a login attempt). */
    async disableTotp (ctx: RequestContext, code: string) {
      const account = await actorAccount(ctx)
      await assertTotpEnabled(account.userId)
      await withSecondFactor(ctx, account, factorOfCode(code), async (trx, method) => {
        await mfa.deleteTotp(trx, account.userId)
        await mfa.deleteRecoveryCodes(trx, account.userId)
        await insertAudit(trx, ctx, { action: 'auth.mfa_disabled', userId: account.userId, changes: { method: 'totp', confirmedWith: method } })
      })
    },

    /** A new set of recovery codes; the old set stops working. */
    async regenerateRecoveryCodes (ctx: RequestContext, code: string) {
      const account = await actorAccount(ctx)
      await assertTotpEnabled(account.userId)
      const recoveryCodes = newRecoveryCodes()
      await withSecondFactor(ctx, account, factorOfCode(code), async (trx, method) => {
        await storeRecoveryCodes(trx, account.userId, recoveryCodes)
        await insertAudit(trx, ctx, { action: 'auth.recovery_codes_regenerated', userId: account.userId, changes: { confirmedWith: method, recoveryCodes: RECOVERY_CODE_COUNT } })
      })
      return { recoveryCodes }
    },

    /**
     * An administrator removes another user's second factors (a lost phone) and ends its logins.
     * Not on oneself: that would let a stolen admin session drop the admin's own second factor.
     */
    async reset (ctx: RequestContext, userId: string) {
      if (ctx.actor?.id === userId) throw forbidden('Your own second factors cannot be reset; disable them with a code instead')
      await db.transaction().execute(async trx => {
        const locked = await users.lockUser(trx, userId)
        if (!locked || locked.deletedAt) throw notFound('User')
        const totp = await mfa.deleteTotp(trx, userId)
        const recoveryCodes = await mfa.deleteRecoveryCodes(trx, userId)
        await mfa.deleteMfaChallenges(trx, userId)
        const passkeysRemoved = await deleteUserPasskeys(trx, userId)
        const sessionsRevoked = await revokeSessions(trx, userId)
        await insertAudit(trx, ctx, { action: 'user.mfa_reset', userId, changes: { totp, recoveryCodes, passkeys: passkeysRemoved, sessionsRevoked } })
      })
    }
  }
}

export type MfaService = ReturnType<typeof createMfaService>

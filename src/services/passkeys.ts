import { createHmac, randomBytes } from 'node:crypto'
import type { AuthenticatorTransportFuture, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import type { Config } from '../config.js'
import type { CompiledQueries } from '../db/compiled-queries.js'
import type { DB } from '../db/connect.js'
import { conflict, invalidCredentials, notFound, unauthorized, validationError } from '../errors.js'
import { NO_METRICS, type AppMetrics } from '../lib/app-metrics.js'
import { hashToken } from '../lib/tokens.js'
import { insertAudit } from '../repositories/audit.js'
import { findMfaChallenge } from '../repositories/mfa.js'
import * as passkeys from '../repositories/passkeys.js'
import * as users from '../repositories/users.js'
import type { AuthenticationResponse, Passkey, RegistrationResponse } from '../../schemas/passkeys.js'
import type { AuthService, LoginAnswer } from './auth.js'
import type { RequestContext } from './context.js'

// Loaded on the first passkey request: the library and its ASN.1/COSE stack add about 25 MiB to
// every instance's resident memory, most of which never serve a passkey.
let webauthnModule: Promise<typeof import('@simplewebauthn/server')> | undefined
const webauthn = () => (webauthnModule ??= import('@simplewebauthn/server'))

/** How long a challenge can be answered: the ceremony's timeout, too. */
const CHALLENGE_TTL_MS = 5 * 60_000
const MAX_PASSKEYS = 20
const DEFAULT_NAME = 'Passkey'
/** The transports a decoy credential claims: those of the most common passkeys (platform, phone). */
const DECOY_TRANSPORTS: AuthenticatorTransportFuture[] = ['hybrid', 'internal']

/** Why an assertion was refused; the callers audit it (auth.login_failed, auth.mfa_failed). */
export type AssertionFailure = 'challenge' | 'unknown_credential' | 'wrong_user' | 'invalid_assertion' | 'counter_regression' | 'suspended'

export type AssertionResult =
  | { ok: true, userId: string, passkeyId: string, status: string }
  | { ok: false, reason: AssertionFailure, userId: string | null, passkeyId?: string }

/**
 * Where an assertion's challenge comes from: the login options' challengeId (passwordless), or a
 * second-factor challenge issued to userId by mfaOptions, found by the challenge the assertion signed.
 */
export type AssertionChallenge = { challengeId: string } | { mfaUserId: string }

export interface PasskeysServiceDeps {
  db: DB
  compiled: CompiledQueries
  config: Config
  authService: Pick<AuthService, 'signIn'>
  metrics?: AppMetrics
}

/** The user handle authenticators keep: the user id's 16 bytes, nothing personal. */
const userHandleOf = (userId: string) => Buffer.from(userId.replaceAll('-', ''), 'hex')

/** The challenge a response's clientDataJSON carries (to find the challenge it answers), if it is readable. */
function challengeOf (clientDataJSON: string): string | undefined {
  try {
    const { challenge } = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'))
    return typeof challenge === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(challenge) ? challenge : undefined
  } catch {
    return undefined
  }
}

const toPasskey = (row: { id: string, name: string, createdAt: Date, lastUsedAt: Date | null }): Passkey => ({
  id: row.id, name: row.name, createdAt: row.createdAt.toISOString(), lastUsedAt: row.lastUsedAt?.toISOString() ?? null
})

export function createPasskeysService ({ db, compiled, config, authService, metrics = NO_METRICS }: PasskeysServiceDeps) {
  const expected = { expectedOrigin: config.webauthnOrigins, expectedRPID: config.webauthnRpId }
  const decoyKey = createHmac('sha256', config.jwtSecret).update('passkey-decoy').digest()

  function actorOf (ctx: RequestContext) {
    if (!ctx.actor) throw unauthorized()
    return ctx.actor
  }

  /**
   * A credential id for an email with no passkey (an unknown account, or one without passkeys):
   * the same for the same email every time, and looking like a real one, so the answer does not
   * tell whether the account exists.
   */
  const decoyCredentialId = (email: string) => createHmac('sha256', decoyKey).update(email).digest().toString('base64url')

  async function assertionOptions (purpose: 'login' | 'mfa', userId: string | null, allowCredentials?: Array<{ id: string, transports?: AuthenticatorTransportFuture[] }>) {
    const options: PublicKeyCredentialRequestOptionsJSON = await (await webauthn()).generateAuthenticationOptions({
      rpID: config.webauthnRpId,
      challenge: randomBytes(32),
      timeout: CHALLENGE_TTL_MS,
      // Passwordless, the passkey is the only factor, so it must verify the user (PIN, biometrics).
      userVerification: purpose === 'login' ? 'required' : 'preferred',
      allowCredentials
    })
    const challengeId = await passkeys.insertChallenge(db, { purpose, userId, challenge: options.challenge, expiresAt: new Date(Date.now() + CHALLENGE_TTL_MS) })
    return { challengeId, options }
  }

  const descriptor = (row: { credentialId: string, transports: string[] }) => ({ id: row.credentialId, transports: row.transports as AuthenticatorTransportFuture[] })

  /**
   * Checks an assertion against a challenge and a stored passkey; the challenge is spent whatever
   * the outcome. The signature counter must move on (or stay 0 on an authenticator that keeps
   * none); one that does not is a cloned key and is refused.
   */
  async function verifyAssertion (by: AssertionChallenge, response: AuthenticationResponse): Promise<AssertionResult> {
    const spent = 'challengeId' in by
      ? await passkeys.spendChallenge(db, { purpose: 'login', id: by.challengeId })
      : await spendMfaChallenge(by.mfaUserId, response)
    const credential = await passkeys.findCredential(db, response.id)
    if (!credential) return { ok: false, reason: spent ? 'unknown_credential' : 'challenge', userId: spent?.userId ?? ('mfaUserId' in by ? by.mfaUserId : null) }
    const failed = (reason: AssertionFailure) => ({ ok: false as const, reason, userId: credential.userId, passkeyId: credential.id })
    // Told apart from a bad signature in the audit trail: a replay of a real assertion, or a slow user.
    if (!spent) return failed('challenge')
    if (spent.userId !== null && credential.userId !== spent.userId) return failed('wrong_user')
    const { userHandle } = response.response
    if (userHandle && !userHandleOf(credential.userId).equals(Buffer.from(userHandle, 'base64url'))) return failed('wrong_user')
    let verification
    try {
      verification = await (await webauthn()).verifyAuthenticationResponse({
        response: { ...response, clientExtensionResults: response.clientExtensionResults ?? {} },
        expectedChallenge: spent.challenge,
        ...expected,
        // Counter 0 here: the library judges the counter before the signature, which would report a
        // forged assertion as a clone. recordUse judges it below, once the signature is known good.
        credential: { id: response.id, publicKey: new Uint8Array(credential.publicKey), counter: 0 },
        requireUserVerification: 'challengeId' in by
      })
    } catch {
      return failed('invalid_assertion')
    }
    if (!verification.verified) return failed('invalid_assertion')
    if (credential.status === 'suspended') return failed('suspended')
    const { newCounter, credentialBackedUp } = verification.authenticationInfo
    if (!await passkeys.recordUse(db, credential.id, newCounter, credentialBackedUp)) return failed('counter_regression')
    return { ok: true, userId: credential.userId, passkeyId: credential.id, status: credential.status }
  }

  function spendMfaChallenge (userId: string, response: AuthenticationResponse) {
    const challenge = challengeOf(response.response.clientDataJSON)
    return challenge ? passkeys.spendChallenge(db, { purpose: 'mfa', userId, challenge }) : undefined
  }

  /** Request options for a passkey as the second factor of userId's login (whose password was right). */
  async function mfaOptions (userId: string) {
    const owned = await passkeys.listCredentialDescriptors(db, userId)
    return assertionOptions('mfa', userId, owned.map(descriptor))
  }

  return {
    verifyAssertion,

    /** The caller's passkeys (for GET /auth/mfa). */
    async list (userId: string): Promise<Passkey[]> {
      return (await passkeys.listPasskeys(db, userId)).map(toPasskey)
    },

    /** Creation options for a new passkey of the caller; the challenge is kept for register(). */
    async registrationOptions (ctx: RequestContext) {
      const actor = actorOf(ctx)
      const user = await users.findUserById(db, compiled, actor.id)
      if (!user) throw unauthorized()
      const existing = await passkeys.listCredentialDescriptors(db, actor.id)
      if (existing.length >= MAX_PASSKEYS) throw conflict(`A user can have at most ${MAX_PASSKEYS} passkeys; remove one first`)
      const options = await (await webauthn()).generateRegistrationOptions({
        rpName: config.webauthnRpName,
        rpID: config.webauthnRpId,
        userID: userHandleOf(user.id),
        userName: user.email,
        userDisplayName: `${user.firstName} ${user.lastName}`,
        challenge: randomBytes(32),
        timeout: CHALLENGE_TTL_MS,
        attestationType: 'none',
        excludeCredentials: existing.map(descriptor),
        // A discoverable credential that verifies the user: what passwordless login needs.
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        supportedAlgorithmIDs: [-8, -7, -257]
      })
      await passkeys.insertChallenge(db, { purpose: 'register', userId: actor.id, challenge: options.challenge, expiresAt: new Date(Date.now() + CHALLENGE_TTL_MS) })
      return options
    },

    /** Verifies the authenticator's attestation against a live challenge issued to the caller and stores the passkey. */
    async register (ctx: RequestContext, response: RegistrationResponse, name = DEFAULT_NAME): Promise<Passkey> {
      const actor = actorOf(ctx)
      const refused = (reason: string) => validationError('The passkey registration could not be verified', [{ field: 'response', message: reason }])
      const challenge = challengeOf(response.response.clientDataJSON)
      const spent = challenge && await passkeys.spendChallenge(db, { purpose: 'register', userId: actor.id, challenge })
      if (!spent) throw refused('answers no live registration challenge of yours: request new options')
      let verification
      try {
        verification = await (await webauthn()).verifyRegistrationResponse({
          // Transports the library does not know yet are kept as strings: they are only hints for the browser.
          response: { ...response, clientExtensionResults: response.clientExtensionResults ?? {} } as RegistrationResponseJSON,
          expectedChallenge: spent.challenge,
          ...expected,
          requireUserVerification: true
        })
      } catch (err) {
        // The library's reasons name what did not match (origin, RP ID, type, flags, format): the client's own data.
        throw refused((err as Error).message.slice(0, 300))
      }
      if (!verification.verified) throw refused('the attestation is not valid')
      const { credential, credentialDeviceType, credentialBackedUp } = verification.registrationInfo
      return db.transaction().execute(async trx => {
        if (await passkeys.findCredential(trx, credential.id)) throw conflict('This passkey is already registered')
        const row = await passkeys.insertPasskey(trx, {
          userId: actor.id,
          credentialId: credential.id,
          publicKey: Buffer.from(credential.publicKey),
          signCount: credential.counter,
          transports: (response.response.transports ?? []).slice(0, 10),
          name: name.trim(),
          deviceType: credentialDeviceType,
          backedUp: credentialBackedUp
        })
        await insertAudit(trx, ctx, { action: 'auth.passkey_added', userId: actor.id, changes: { passkeyId: row.id, name: row.name } })
        return toPasskey(row)
      })
    },

    /** Removes one of the caller's passkeys; anyone else's, or an unknown one, is 404. */
    async remove (ctx: RequestContext, id: string) {
      const actor = actorOf(ctx)
      await db.transaction().execute(async trx => {
        if (!await passkeys.deletePasskey(trx, actor.id, id)) throw notFound('Passkey')
        await insertAudit(trx, ctx, { action: 'auth.passkey_removed', userId: actor.id, changes: { passkeyId: id } })
      })
    },

    /**
     * Request options for a passwordless login. Without an email: any discoverable credential.
     * With one: that account's passkeys, or (unknown account, or none) a decoy of the same shape.
     */
    async loginOptions (email?: string) {
      if (email === undefined) return assertionOptions('login', null)
      const normalized = email.trim().toLowerCase()
      const rows = await passkeys.findDescriptorsByEmail(db, normalized)
      const owned = rows.flatMap(r => r.credentialId ? [descriptor({ credentialId: r.credentialId, transports: r.transports ?? [] })] : [])
      const allow = owned.length > 0 ? owned : [{ id: decoyCredentialId(normalized), transports: DECOY_TRANSPORTS }]
      // An unknown email binds the challenge to no account, which makes it one for any discoverable
      // credential, as without an email: that reveals nothing the caller could not ask for anyway.
      return assertionOptions('login', rows[0]?.userId ?? null, allow)
    },

    /** mfaOptions for the user of a pending second step, found by its mfaToken (which stays unspent). */
    async secondFactorOptions (mfaToken: string) {
      const challenge = await findMfaChallenge(db, hashToken(mfaToken))
      if (!challenge) throw unauthorized('The MFA token is invalid, spent or expired; log in again')
      return mfaOptions(challenge.userId)
    },

    mfaOptions,

    /** A passwordless login: the assertion is the credential. Any failure is 401 INVALID_CREDENTIALS. */
    async login (ctx: RequestContext, challengeId: string, response: AuthenticationResponse): Promise<LoginAnswer> {
      const result = await verifyAssertion({ challengeId }, response)
      if (!result.ok) {
        metrics.login('failure')
        await insertAudit(db, ctx, {
          action: 'auth.login_failed',
          userId: result.userId,
          changes: { method: 'passkey', reason: result.reason, ...(result.passkeyId ? { passkeyId: result.passkeyId } : {}) }
        })
        throw invalidCredentials('The passkey could not be verified')
      }
      // signIn refuses a pending account when verification is required (403), as for every login.
      return authService.signIn(ctx, result.userId, { amr: ['passkey'], method: 'passkey' })
    }
  }
}

export type PasskeysService = ReturnType<typeof createPasskeysService>

import { generateSecret, generateURI, verify } from 'otplib'

/** RFC 6238 as authenticator apps expect it: HMAC-SHA-1, 6 digits, 30 s steps. */
export const TOTP_PERIOD_SEC = 30
const TOTP = { algorithm: 'sha1', digits: 6, period: TOTP_PERIOD_SEC } as const
/** One step either side of now: a phone clock a little off, or a code typed as it rolled over. */
const TOLERANCE_SEC = TOTP_PERIOD_SEC

/** A new secret: 20 random bytes (160 bits, RFC 4226's recommendation), base32. */
export const newTotpSecret = () => generateSecret({ length: 20 })

/** The otpauth:// URI an authenticator app reads from the QR code. */
export const totpUri = (secret: string, issuer: string, account: string) => generateURI({ ...TOTP, issuer, label: account, secret })

// qrcode (about 10 MiB resident) is loaded by the first TOTP setup, not by every instance at start.
export const qrSvg = async (text: string) => (await import('qrcode')).default.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })

/**
 * The time step a code is valid for, or undefined. Codes of afterTimeStep or earlier are refused:
 * passing the last accepted step makes each code usable once.
 */
export async function totpTimeStep (secret: string, code: string, afterTimeStep?: number | null): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined
  const result = await verify({ ...TOTP, secret, token: code, epochTolerance: TOLERANCE_SEC, ...(afterTimeStep == null ? {} : { afterTimeStep }) })
  // The functional API's result type also covers HOTP, which has no time step.
  return result.valid && 'timeStep' in result ? result.timeStep : undefined
}

// Verifies a webhook delivery as the Standard Webhooks specification defines it, with WebCrypto
// only, so it runs in browsers, React Native (with a WebCrypto polyfill), workers and Node alike.

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError'
}

export interface VerifyWebhookOptions {
  /** How far webhook-timestamp may be from now, in seconds (default 300, as the specification's libraries). */
  toleranceSec?: number
  /** The current time (default: Date.now()). */
  now?: number
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>

function header (headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1]
  return Array.isArray(entry) ? entry[0] : entry
}

function base64ToBytes (text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * Checks a delivery's webhook-signature (any of its `v1,<base64>` signatures, so both secrets
 * verify during a rotation) against the raw body, webhook-id and webhook-timestamp, and the
 * timestamp against the tolerance; resolves to the parsed event, or rejects with a
 * WebhookVerificationError. Pass the body exactly as received (not re-serialized JSON).
 */
export async function verifyWebhook (secret: string, body: string, headers: HeaderSource, options: VerifyWebhookOptions = {}): Promise<unknown> {
  const id = header(headers, 'webhook-id')
  const timestamp = header(headers, 'webhook-timestamp')
  const signature = header(headers, 'webhook-signature')
  if (!id || !timestamp || !signature) throw new WebhookVerificationError('Missing webhook-id, webhook-timestamp or webhook-signature')
  const seconds = Number(timestamp)
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookVerificationError('Invalid webhook-timestamp')
  const now = Math.floor((options.now ?? Date.now()) / 1000)
  if (Math.abs(now - seconds) > (options.toleranceSec ?? 300)) throw new WebhookVerificationError('The webhook-timestamp is too old or too new')
  let keyBytes: Uint8Array<ArrayBuffer>
  try {
    keyBytes = base64ToBytes(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret)
  } catch {
    throw new WebhookVerificationError('The secret is not base64 (whsec_...)')
  }
  const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
  const signed = new TextEncoder().encode(`${id}.${seconds}.${body}`)
  for (const candidate of signature.split(' ')) {
    const [version, value] = candidate.split(',')
    if (version !== 'v1' || !value) continue
    let bytes: Uint8Array<ArrayBuffer>
    try { bytes = base64ToBytes(value) } catch { continue }
    // subtle.verify compares in constant time.
    if (await crypto.subtle.verify('HMAC', key, bytes, signed)) return body === '' ? undefined : JSON.parse(body)
  }
  throw new WebhookVerificationError('No matching signature')
}

import { lookup as dnsLookup } from 'node:dns/promises'
import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'
import ipaddr from 'ipaddr.js'

/** Resolves a host name to every address it has (dns.lookup's all: true). Tests inject their own. */
export type Resolver = (hostname: string) => Promise<Array<{ address: string, family: number }>>

export const systemResolver: Resolver = hostname => dnsLookup(hostname, { all: true, verbatim: true })

export class RefusedTarget extends Error {
  override name = 'RefusedTarget'
}

/**
 * Only public unicast addresses may be webhook targets (SSRF): ipaddr.js names every other range
 * (loopback, private, link-local with 169.254.169.254, carrier-grade NAT, unique-local,
 * unspecified, multicast, reserved, and the IPv6 forms that embed an IPv4 address: mapped,
 * NAT64, 6to4, Teredo).
 */
function isPublic (address: string): boolean {
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  return parsed.range() === 'unicast'
}

/**
 * The address to connect to for a webhook URL: its host resolved (an IP literal as is), refused
 * when any of its addresses is not public, unless allowPrivate. The caller connects to exactly
 * this address, so a DNS answer that changes between the check and the connection (rebinding)
 * cannot send the request elsewhere.
 */
export async function resolveTarget (url: URL, allowPrivate: boolean, resolve: Resolver = systemResolver): Promise<{ address: string, family: number }> {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let addresses: Array<{ address: string, family: number }>
  if (ipaddr.isValid(host)) {
    addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }]
  } else {
    try { addresses = await resolve(host) } catch { throw new RefusedTarget(`the host ${host} does not resolve`) }
    if (addresses.length === 0) throw new RefusedTarget(`the host ${host} does not resolve`)
  }
  if (!allowPrivate && addresses.some(a => !isPublic(a.address))) {
    throw new RefusedTarget(`the host ${host} resolves to a loopback, private or link-local address`)
  }
  return addresses[0]
}

export interface PostResult { status: number }

/**
 * POSTs a body to the URL over a connection to the given (checked) address: TLS still verifies
 * the URL's host name. No redirect is followed (node:http never does); the answer's body is read
 * up to maxBodyBytes and dropped; the whole exchange is abandoned after timeoutMs.
 */
export function postTo (url: URL, target: { address: string, family: number }, headers: Record<string, string>, body: string,
  options: { timeoutMs: number, maxBodyBytes: number }): Promise<PostResult> {
  const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) (callback as unknown as (err: null, addresses: Array<{ address: string, family: number }>) => void)(null, [target])
    else callback(null, target.address, target.family)
  }
  const client = url.protocol === 'https:' ? https : http
  return new Promise((resolve, reject) => {
    const request = client.request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup,
      agent: false,
      signal: AbortSignal.timeout(options.timeoutMs)
    }, response => {
      let read = 0
      const done = () => resolve({ status: response.statusCode ?? 0 })
      response.on('data', (chunk: Buffer) => {
        read += chunk.length
        if (read > options.maxBodyBytes) { response.destroy(); done() }
      })
      response.on('end', done)
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(body)
  })
}

import type { InjectOptions, LightMyRequestResponse } from 'fastify'

/**
 * A browser's part of a sign-in with an OpenID provider, for the tests that drive one
 * (test/oidc.test.ts, test/no-secrets-leak.test.ts). The service is reached through app.inject:
 * PUBLIC_URL only names it, so the browser below recognises the provider's redirect to it and
 * hands that request to the app instead.
 */
export const PUBLIC_URL = 'http://api.example.test'
export const APP = 'http://app.example.test/signed-in'
export const CLIENT = { clientId: 'user-management', clientSecret: 'a-client-secret-for-tests-only' }
export const callbackOf = (name: string) => `${PUBLIC_URL}/api/v1/auth/oidc/${name}/callback`

/** A cookie jar for one host, as a browser keeps it (only name=value matters here). */
export class Jar {
  private cookies = new Map<string, string>()
  take (setCookie: string[]) {
    for (const line of setCookie) {
      const [pair, ...attributes] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      const expired = attributes.some(a => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a))
      if (expired || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  get (name: string) { return this.cookies.get(name) }
  header () { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
}

export const setCookiesOf = (res: LightMyRequestResponse) => [res.headers['set-cookie'] ?? []].flat()

export function redirectParams (res: LightMyRequestResponse) {
  if (res.statusCode !== 302) throw new Error(`expected a 302, got ${res.statusCode} ${res.body}`)
  const location = new URL(String(res.headers.location))
  return { location, code: location.searchParams.get('code'), error: location.searchParams.get('error') }
}

/** Follows the provider's redirects (its own cookies kept) until it sends the browser back to the service: that callback URL. */
export async function throughProvider (start: URL): Promise<URL> {
  const jar = new Jar()
  let url = start
  for (let hop = 0; hop < 10; hop++) {
    if (url.href.startsWith(PUBLIC_URL)) return url
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header() } })
    jar.take(res.headers.getSetCookie())
    const location = res.headers.get('location')
    await res.arrayBuffer()
    if (!location || res.status < 300 || res.status >= 400) throw new Error(`the provider answered ${res.status} at ${url.pathname}`)
    url = new URL(location, url)
  }
  throw new Error('too many redirects at the provider')
}

/** The app's half of a flow, authorize and callback as a browser reaches them, through `inject` (app.inject, or a wrapper that records). */
export function oidcFlow<R extends LightMyRequestResponse> (inject: (options: InjectOptions & { url: string }) => Promise<R>) {
  /** Starts a flow in a fresh browser: the app's authorize answer and that browser's jar for the app. */
  async function startFlow (provider: string, redirectUri = APP) {
    const res = await inject({ method: 'GET', url: `/api/v1/auth/oidc/${provider}/authorize?redirectUri=${encodeURIComponent(redirectUri)}` })
    if (res.statusCode !== 302) throw new Error(`authorize answered ${res.statusCode} ${res.body}`)
    const appJar = new Jar()
    appJar.take(setCookiesOf(res))
    return { res, appJar, providerUrl: new URL(String(res.headers.location)) }
  }

  const callback = (url: URL, appJar?: Jar) => inject({
    method: 'GET',
    url: url.pathname + url.search,
    headers: appJar?.header() ? { cookie: appJar.header() } : {}
  })

  return { startFlow, callback }
}

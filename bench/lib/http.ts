import http from 'node:http'

export interface Answer { status: number, text: string, headers: Record<string, string> }

/**
 * One request on a connection of its own (no keep-alive pool shared between setup calls), for
 * the bench's logins, cursors, parity checks and health probes.
 */
export function request (url: string, { method = 'GET', headers = {}, body }: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: 60_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({
        status: res.statusCode ?? 0,
        text,
        headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]))
      }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 60 s`)))
    req.on('error', reject)
    req.end(body)
  })
}

import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'

interface Response { description?: string, content?: Record<string, { schema?: unknown }> }
interface Document {
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>
  components?: { responses?: Record<string, Response> }
}
export interface Answer { method: string, url: string, statusCode: number, headers: Record<string, unknown>, body: string }

// The contract lets these stay out of the document (and GraphiQL, a page for people served outside production, as /docs is);
// HEAD and OPTIONS are Fastify's and CORS's own answers.
const OUTSIDE = /^\/(docs|openapi\.json|metrics|graphiql)(\/|$)/
const DOC = 'openapi.json'
const pointer = (...parts: string[]) => `${DOC}#/${parts.map(p => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')}`

/**
 * Checks answers against an OpenAPI 3.1 document: the status is documented for the operation
 * (or shared in components.responses), the body is on the documented schema, and every
 * non-2xx other than 304 is the error envelope carrying the response's X-Request-Id.
 * Returns what is wrong, empty when nothing is.
 */
export function createResponseValidator (openapi: object) {
  const document = openapi as Document
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats.default(ajv)
  ajv.addSchema({ ...document, $id: DOC })
  const compiled = new Map<string, ValidateFunction>()
  const validatorOf = (ref: string) => {
    let validate = compiled.get(ref)
    if (!validate) compiled.set(ref, validate = ajv.compile({ $ref: ref }))
    return validate
  }

  // A shared response names its status only in its description ("413: ...").
  const shared = new Map<string, string>()
  for (const [name, response] of Object.entries(document.components?.responses ?? {})) {
    const status = /^(\d{3}):/.exec(response.description ?? '')?.[1]
    if (!status) throw new Error(`components.responses.${name}: its description does not start with its status`)
    shared.set(status, name)
  }

  // The most literal template wins, as in the router: GET /users/batch is not GET /users/{id} when both exist.
  const templates = Object.keys(document.paths)
    .map(path => ({ path, segments: path.split('/') }))
    .sort((a, b) => a.segments.filter(s => s.startsWith('{')).length - b.segments.filter(s => s.startsWith('{')).length)
  function templateOf (method: string, path: string) {
    const segments = (path.length > 1 ? path.replace(/\/$/, '') : path).split('/')
    return templates.find(t => document.paths[t.path][method] && t.segments.length === segments.length &&
      t.segments.every((s, i) => s === segments[i] || (s.startsWith('{') && segments[i] !== '')))?.path
  }

  function bodyProblems (answer: Answer, ref: string): string[] {
    if (!String(answer.headers['content-type'] ?? '').startsWith('application/json')) return [`content-type ${answer.headers['content-type']} is not JSON`]
    let body: unknown
    try { body = JSON.parse(answer.body) } catch { return ['the body is not JSON'] }
    const validate = validatorOf(ref)
    if (validate(body)) return []
    return (validate.errors ?? []).map(e => `body${e.instancePath} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
  }

  return function check (answer: Answer): string[] {
    const method = answer.method.toLowerCase()
    const path = answer.url.split('?')[0]
    if (method === 'head' || OUTSIDE.test(path)) return []
    const problems: string[] = []
    if (!answer.headers['x-request-id']) problems.push('no x-request-id header')
    const status = String(answer.statusCode)
    // A redirect (the OpenID Connect sign-in's 302s) is no error: it carries Location and no body.
    const redirect = answer.statusCode === 302 && Boolean(answer.headers.location)
    const envelope = answer.statusCode >= 300 && answer.statusCode !== 304 && !redirect
    if (envelope) {
      problems.push(...bodyProblems(answer, pointer('components', 'schemas', 'Error')))
      const requestId = (() => { try { return JSON.parse(answer.body).error?.requestId } catch { return undefined } })()
      if (requestId !== answer.headers['x-request-id']) problems.push(`error.requestId ${requestId} is not x-request-id ${answer.headers['x-request-id']}`)
    }
    if (method === 'options') return problems

    const template = templateOf(method, path)
    if (!template) {
      if (!envelope) problems.push(`no operation is documented for ${method.toUpperCase()} ${path}, yet it answered ${status}`)
      if (status === '405' && !answer.headers.allow) problems.push('a 405 without an Allow header')
      return problems
    }
    const where = `${method.toUpperCase()} ${template}`
    const documented = document.paths[template][method].responses[status]
    const sharedName = shared.get(status)
    const response = documented ?? (sharedName ? document.components?.responses?.[sharedName] : undefined)
    if (!response) return [...problems, `status ${status} is not documented for ${where}`]
    if (response.content?.['application/json']?.schema) {
      // The envelope check already validated a non-2xx body against Error, which every documented error is.
      if (!envelope) {
        const ref = documented
          ? pointer('paths', template, method, 'responses', status, 'content', 'application/json', 'schema')
          : pointer('components', 'responses', sharedName!, 'content', 'application/json', 'schema')
        problems.push(...bodyProblems(answer, ref).map(p => `${p} (${where} ${status})`))
      }
    } else if (response.content?.['text/event-stream']) {
      // A stream (GET /api/v1/events, over real HTTP): its frames are not JSON; the media type is what is checked.
      if (!String(answer.headers['content-type'] ?? '').startsWith('text/event-stream')) problems.push(`${where} ${status}: content-type ${answer.headers['content-type']} is not text/event-stream`)
    } else if (answer.body !== '') {
      problems.push(`${where} ${status} documents no body, yet one was sent`)
    }
    return problems
  }
}

import { validationError } from '../errors.js'

/**
 * The `q` of GET /api/v1/users (CONTRACT.md, "Advanced search"), parsed into terms that must all
 * match: plain words and "quoted phrases" (in the email, first and last name), and the field terms
 * `email:`, `name:` (first or last name) and `phone:`, whose value may be quoted too
 * (`name:"Mary Ann"`). Hand-written: the grammar is four token kinds, smaller than any query-parser
 * dependency's configuration. The SQL for each term lives in src/repositories/users.ts.
 */
export type SearchField = 'any' | 'email' | 'name' | 'phone'

export interface SearchTerm {
  field: SearchField
  /** The text to find, as typed (matching is case-insensitive). */
  text: string
  /**
   * Only for plain words with fuzzy=true: the word with each pair of neighbouring letters swapped.
   * A swap (`jhon`) shares too few trigrams with the word meant (`john`) for trigram similarity to
   * find it, so these variants also match as substrings.
   */
  swaps?: string[]
}

/** Trigram word similarity a fuzzy word needs (pg_trgm.word_similarity_threshold, set on every connection by src/db/connect.ts). */
export const FUZZY_WORD_SIMILARITY = 0.3

/** At most this many terms: each is a condition of the statement. */
export const MAX_SEARCH_TERMS = 8

/** Words longer than this get no swap variants (trigram similarity alone tolerates their typos). */
const MAX_SWAPPED_LENGTH = 24

const FIELD_PREFIX = /^(email|name|phone):/i

function invalid (message: string): never {
  throw validationError(message, [{ field: 'q', message }])
}

function swapsOf (word: string): string[] {
  if (word.length < 3 || word.length > MAX_SWAPPED_LENGTH) return []
  const variants = new Set<string>()
  for (let i = 0; i + 1 < word.length; i++) {
    const swapped = word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2)
    if (swapped.toLowerCase() !== word.toLowerCase()) variants.add(swapped)
  }
  return [...variants]
}

export function parseSearch (q: string, options: { fuzzy?: boolean } = {}): SearchTerm[] {
  const terms: SearchTerm[] = []
  let at = 0
  /** A quoted value from `at` (an opening quote): up to the closing quote, or the end when there is none. */
  const quoted = () => {
    const close = q.indexOf('"', at + 1)
    const end = close === -1 ? q.length : close
    const text = q.slice(at + 1, end).trim()
    at = end + 1
    return text
  }
  const word = () => {
    const match = /^\S*/.exec(q.slice(at))![0]
    at += match.length
    return match
  }
  while (at < q.length) {
    if (/\s/.test(q[at])) { at++; continue }
    const prefix = FIELD_PREFIX.exec(q.slice(at))
    if (prefix) {
      at += prefix[0].length
      const text = q[at] === '"' ? quoted() : word()
      if (text === '') invalid(`${prefix[1].toLowerCase()}: needs a value`)
      terms.push({ field: prefix[1].toLowerCase() as SearchField, text })
    } else if (q[at] === '"') {
      const text = quoted()
      if (text !== '') terms.push({ field: 'any', text })
    } else {
      const text = word()
      terms.push(options.fuzzy ? { field: 'any', text, swaps: swapsOf(text) } : { field: 'any', text })
    }
  }
  if (terms.length === 0) invalid('q has no term to search for')
  if (terms.length > MAX_SEARCH_TERMS) invalid(`q has more than ${MAX_SEARCH_TERMS} terms`)
  return terms
}

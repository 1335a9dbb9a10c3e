import { createRequire } from 'node:module'
import { sep } from 'node:path'

type LanguageCommon = typeof import('@zxcvbn-ts/language-common')

/**
 * A set of strings held as one string and a table of offsets (open addressing, linear probing):
 * two objects for the garbage collector to trace on every major collection instead of tens of
 * thousands of strings and a hash table of them.
 */
export class CompactStringSet {
  private readonly text: string
  private readonly slots: Int32Array
  private readonly mask: number

  /** The words must not contain a line feed: it separates them in the text. */
  constructor (words: Iterable<string>) {
    const unique = [...new Set(words)]
    if (unique.some(word => word.includes('\n'))) throw new Error('CompactStringSet: a word contains a line feed')
    this.text = unique.join('\n')
    let size = 16
    while (size < unique.length * 2) size *= 2
    this.mask = size - 1
    // Each slot holds a word's offset in the text plus one; 0 is empty.
    this.slots = new Int32Array(size)
    let offset = 0
    for (const word of unique) {
      let slot = hash(word) & this.mask
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask
      this.slots[slot] = offset + 1
      offset += word.length + 1
    }
  }

  has (word: string): boolean {
    for (let slot = hash(word) & this.mask; this.slots[slot] !== 0; slot = (slot + 1) & this.mask) {
      const start = this.slots[slot] - 1
      const end = start + word.length
      if (this.text.startsWith(word, start) && (end === this.text.length || this.text.charCodeAt(end) === 10)) return true
    }
    return false
  }
}

/** FNV-1a over UTF-16 code units. */
function hash (word: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193)
  return h >>> 0
}

let common: CompactStringSet | undefined

/**
 * Whether the password is one of the ~49k most common ones (zxcvbn's `passwords-common`), ignoring case.
 * The dictionary costs a few tens of milliseconds to decompress, so it is loaded on first use, once,
 * and synchronously, so the password policy stays a plain function. Only the compact set is kept:
 * the package's modules (about 3 MB of heap with its other lists) are dropped from the module cache.
 */
export function isCommonPassword (password: string): boolean {
  if (!common) {
    const require = createRequire(import.meta.url)
    const { dictionary } = require('@zxcvbn-ts/language-common') as LanguageCommon
    common = new CompactStringSet(dictionary['passwords-common'].map(p => p.toLowerCase()))
    for (const file of Object.keys(require.cache)) if (file.includes(`${sep}@zxcvbn-ts${sep}`)) delete require.cache[file]
  }
  return common.has(password.toLowerCase())
}

import { createRequire } from 'node:module'

type LanguageCommon = typeof import('@zxcvbn-ts/language-common')

let common: Set<string> | undefined

/**
 * Whether the password is one of the ~49k most common ones (zxcvbn's `passwords-common`), ignoring case.
 * The dictionary costs a few tens of milliseconds and several MB to decompress, so it is loaded on first
 * use, once, and synchronously, so the password policy stays a plain function.
 */
export function isCommonPassword (password: string): boolean {
  if (!common) {
    const { dictionary } = createRequire(import.meta.url)('@zxcvbn-ts/language-common') as LanguageCommon
    common = new Set(dictionary['passwords-common'].map(p => p.toLowerCase()))
  }
  return common.has(password.toLowerCase())
}

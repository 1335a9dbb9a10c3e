import t from 'tap'
import { createRequire } from 'node:module'
import { CompactStringSet, isCommonPassword } from '../src/lib/common-passwords.js'

t.test('the compact set answers exactly as a Set of the same words', async t => {
  const words = ['alpha', 'alphabet', 'al', 'beta', 'beta', '', 'ünïcödé', '123456', 'a b c']
  const set = new CompactStringSet(words)
  const reference = new Set(words)
  const probes = [...words, 'alph', 'alphab', 'alphabets', 'a', 'b', 'bet', 'betaalpha', 'alpha\nbeta', 'ünïcöd', 'Alpha', '1234567', 'x']
  for (const probe of probes) t.equal(set.has(probe), reference.has(probe), JSON.stringify(probe))
  t.throws(() => new CompactStringSet(['fine', 'two\nlines']), /line feed/)
})

t.test('the common-password check finds every listed password, in any case, and nothing next to them', async t => {
  const listed = (createRequire(import.meta.url)('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common'))
    .dictionary['passwords-common'].map(p => p.toLowerCase())
  const reference = new Set(listed)
  let misses = 0
  let falseHits = 0
  for (const password of listed) {
    if (!isCommonPassword(password) || !isCommonPassword(password.toUpperCase())) misses++
    for (const near of [`${password}x`, `x${password}`, password.slice(1)]) {
      if (isCommonPassword(near) !== reference.has(near)) falseHits++
    }
  }
  t.equal(misses, 0, `all ${listed.length} listed passwords are found`)
  t.equal(falseHits, 0, 'neighbours are found only when they are listed themselves')
  t.notOk(isCommonPassword('Correct-Horse-9-Battery'))
})

import t from 'tap'
import argon2 from 'argon2'
import bcrypt from 'bcryptjs'
import { createPasswordHasher, hashKindOf } from '../src/lib/password.js'
import { assertError, build, createUser } from './helper.js'
import { legacy, PW } from './legacy-hashes.js'

t.test('the hasher verifies every legacy kind and says which need a new hash', async t => {
  const hasher = createPasswordHasher(1024)
  for (const [name, make] of Object.entries(legacy)) {
    const hash = await make(PW)
    t.ok(hashKindOf(hash), `${name} is a known kind`)
    t.equal(await hasher.verify(hash, PW), true, `${name}: right password`)
    t.equal(await hasher.verify(hash, PW + 'x'), false, `${name}: wrong password`)
    t.equal(hasher.needsRehash(hash), true, `${name} needs a new hash`)
  }
  const current = await hasher.hash(PW)
  t.equal(hasher.needsRehash(current), false, 'the current argon2id does not')
  t.equal(createPasswordHasher(512).needsRehash(current), false, 'nor a stronger one than asked for')

  const django = 'pbkdf2_sha256$260000$' // a real one's prefix, broken after it
  for (const malformed of ['', 'plain-text', '$2b$04$short', '$argon2id$v=19$m=1024', '$scrypt$ln=99,r=8,p=1$c2FsdA$aGFzaA', `${django}salt$notbase64`, '$scrypt$ln=10,r=8,p=1$$']) {
    t.equal(hashKindOf(malformed), undefined, `unknown kind: ${JSON.stringify(malformed)}`)
    t.equal(await hasher.verify(malformed, PW), false, 'verifies as false, without throwing')
  }
})

t.test('a login with a legacy hash stores an argon2id hash in the same step', async t => {
  const app = await build(t)
  const db = app.database.db
  const storedHash = async (id: string) => (await db.selectFrom('users').select('passwordHash').where('id', '=', id).executeTakeFirstOrThrow()).passwordHash ?? ''
  const login = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })

  for (const [name, make] of Object.entries(legacy)) {
    t.test(name, async t => {
      const user = await createUser(app)
      const hash = await make(PW)
      await db.updateTable('users').set({ passwordHash: hash }).where('id', '=', user.id).execute()

      assertError(t, await login(user.email, PW + '!'), 401, 'INVALID_CREDENTIALS', 'wrong password')
      t.equal(await storedHash(user.id), hash, 'a failed login changes nothing')

      t.equal((await login(user.email, PW)).statusCode, 200, 'the legacy hash logs in')
      const rehashed = await storedHash(user.id)
      t.match(rehashed, /^\$argon2id\$v=19\$m=1024,p=1,t=2\$/, 'replaced by argon2id with the current parameters')
      t.equal((await login(user.email, PW)).statusCode, 200, 'the new hash logs in')
      t.equal(await storedHash(user.id), rehashed, 'and is not replaced again')
      assertError(t, await login(user.email, PW + '!'), 401, 'INVALID_CREDENTIALS', 'wrong password after the rehash')
    })
  }

  t.test('bcrypt\'s 72-byte truncation: accepted as bcrypt did, ended by the first login', async t => {
    const user = await createUser(app)
    const long = 'Aa1' + 'x'.repeat(77) // 80 bytes
    const sameFirst72 = long.slice(0, 72) + 'DIFFERENT'
    await db.updateTable('users').set({ passwordHash: await bcrypt.hash(long, 4) }).where('id', '=', user.id).execute()
    t.equal((await login(user.email, long)).statusCode, 200, 'the whole password logs in')
    assertError(t, await login(user.email, sameFirst72), 401, 'INVALID_CREDENTIALS', 'only the whole password counts now')
    t.equal((await login(user.email, long)).statusCode, 200)
  })

  t.test('concurrent logins with a legacy hash all succeed; one new hash is kept', async t => {
    const user = await createUser(app)
    await db.updateTable('users').set({ passwordHash: await legacy.pbkdf2(PW) }).where('id', '=', user.id).execute()
    const answers = await Promise.all(Array.from({ length: 5 }, () => login(user.email, PW)))
    t.same(answers.map(res => res.statusCode), [200, 200, 200, 200, 200])
    const rehashed = await storedHash(user.id)
    t.match(rehashed, /^\$argon2id\$/)
    t.equal(await argon2.verify(rehashed, PW), true)
  })
})

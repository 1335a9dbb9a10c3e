import { sql } from 'kysely'
import t from 'tap'
import { build, createUser } from './helper.js'

// The read model on users (role_names, profile; migration 003) is kept by triggers: it must equal
// what the source tables say after any mix of writes, concurrent ones included, made straight in SQL.
t.test('the read model on users follows user_roles, roles and user_profiles', async t => {
  const app = await build(t)
  const { db } = app.database

  const drift = async (userIds: string[]) => (await sql<{ id: string }>`
    select u.id from users u
    where u.id = any(${userIds}::uuid[]) and (
      u.role_names is distinct from coalesce((select array_agg(r.name order by r.name) from user_roles ur join roles r on r.id = ur.role_id where ur.user_id = u.id), '{}')
      or u.profile is distinct from (select jsonb_build_object('bio', p.bio, 'avatarUrl', p.avatar_url, 'phone', p.phone, 'locale', p.locale, 'timezone', p.timezone) from user_profiles p where p.user_id = u.id))
  `.execute(db)).rows

  const roleNames = ['rm_a', 'rm_b', 'rm_c', 'rm_d', 'rm_e', 'rm_f'].map(name => `${name}_${Math.random().toString(36).slice(2, 8)}`)
  const roles = await Promise.all(roleNames.map(name => db.insertInto('roles').values({ name, description: '', permissions: [] }).returning(['id', 'name']).executeTakeFirstOrThrow()))
  const people = await Promise.all(Array.from({ length: 4 }, () => createUser(app)))
  const ids = people.map(p => p.id)

  t.test('concurrent grants and revocations of the same users, each its own transaction', async t => {
    const writes = []
    for (let round = 0; round < 6; round++) {
      for (const id of ids) {
        for (const role of roles) {
          writes.push(db.transaction().execute(async trx => {
            if ((round + role.name.length) % 2 === 0) {
              await trx.insertInto('userRoles').values({ userId: id, roleId: role.id }).onConflict(oc => oc.doNothing()).execute()
            } else {
              await trx.deleteFrom('userRoles').where('userId', '=', id).where('roleId', '=', role.id).execute()
            }
          }))
        }
      }
    }
    await Promise.all(writes)
    t.same(await drift(ids), [], 'no user drifted from its roles')
    const one = await app.inject({ method: 'GET', url: `/api/v1/users/${ids[0]}`, headers: { authorization: `Bearer ${people[0].token}` } })
    const expected = (await db.selectFrom('userRoles as ur').innerJoin('roles as r', 'r.id', 'ur.roleId').select('r.name').where('ur.userId', '=', ids[0]).orderBy('r.name').execute()).map(r => r.name)
    t.same(one.json().data.roles, expected, 'the API returns the roles the source tables hold')
  })

  t.test('renaming a role renames it for its holders', async t => {
    await db.insertInto('userRoles').values(ids.map(userId => ({ userId, roleId: roles[0].id }))).onConflict(oc => oc.doNothing()).execute()
    const renamed = `${roles[0].name}_x`
    await db.updateTable('roles').set({ name: renamed }).where('id', '=', roles[0].id).execute()
    t.same(await drift(ids), [])
    const row = await db.selectFrom('users').select('roleNames').where('id', '=', ids[1]).executeTakeFirstOrThrow()
    t.ok(row.roleNames.includes(renamed), 'the new name is there')
  })

  t.test('profiles written, changed concurrently and removed', async t => {
    await Promise.all(ids.map((userId, i) => db.insertInto('userProfiles').values({ userId, bio: `bio ${i}` }).execute()))
    await Promise.all(ids.flatMap(userId => [1, 2, 3].map(n => db.updateTable('userProfiles').set({ locale: `l${n}` }).where('userId', '=', userId).execute())))
    t.same(await drift(ids), [], 'after inserts and concurrent updates')
    await db.deleteFrom('userProfiles').where('userId', '=', ids[0]).execute()
    t.same(await drift(ids), [], 'after a delete')
    const row = await db.selectFrom('users').select('profile').where('id', '=', ids[0]).executeTakeFirstOrThrow()
    t.equal(row.profile, null)
  })
})

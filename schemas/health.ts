import { Type } from '@sinclair/typebox'
import { Success } from './common.js'

export const LivenessResponseSchema = Success(Type.Object({ status: Type.Literal('ok') }))

export const ReadinessSchema = Type.Object({
  status: Type.Literal('ok'),
  checks: Type.Object({
    database: Type.Literal('ok'),
    redis: Type.Optional(Type.Literal('ok'))
  })
}, { $id: 'Readiness' })
export const ReadinessResponseSchema = Success(Type.Ref(ReadinessSchema))

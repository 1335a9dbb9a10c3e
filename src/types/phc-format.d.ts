// @phc/format ships no types; only what password-hashes.ts uses.
declare module '@phc/format' {
  export interface PhcObject {
    id: string
    version?: number
    params?: Record<string, string | number>
    salt?: Buffer
    hash?: Buffer
  }
  export function deserialize (phcString: string): PhcObject
  export function serialize (object: PhcObject): string
}

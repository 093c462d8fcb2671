/**
 * The Redis key names of a bucket. Every key of a bucket shares one hash tag, `{<namespace>:<bucket>}`, so a
 * script's keys always live in one Cluster slot, and the namespace and bucket name are escaped so that no name
 * can close the tag, split it, or reach into another namespace.
 *
 * What each key holds (its Redis type, its fields, the numbers packed in them) is described once, in
 * `lua/layout.lua`, next to the constants the Lua reads it with.
 *
 * @internal
 */
import type { Algorithm, Bucket } from "../../Quota.js"

/** Characters kept as they are; every other character is percent-encoded (UTF-8 bytes, `%uXXXX` for a lone surrogate). */
const plain = /^[A-Za-z0-9._~!*'()-]$/

/**
 * Escapes a name for use inside a hash tag. Injective: `%` itself is encoded, and the output never contains
 * `{`, `}`, `:`, whitespace or control characters.
 *
 * @example
 * ```ts
 * escapeName("a:b{c} d") // "a%3Ab%7Bc%7D%20d"
 * ```
 */
export const escapeName = (name: string): string => {
  let out = ""
  for (const ch of name) {
    if (plain.test(ch)) {
      out += ch
      continue
    }
    const code = ch.codePointAt(0) ?? 0
    if (code >= 0xd800 && code <= 0xdfff) {
      out += `%u${code.toString(16).toUpperCase().padStart(4, "0")}`
      continue
    }
    for (const byte of Buffer.from(ch, "utf8")) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

/**
 * The hash tag of a bucket: every key of the bucket starts with it.
 *
 * @example
 * ```ts
 * bucketTag("quotaflow", "gpt-4o") // "{quotaflow:gpt-4o}"
 * ```
 */
export const bucketTag = (namespace: string, bucket: string): string => `{${escapeName(namespace)}:${escapeName(bucket)}}`

/**
 * The pub/sub channel on which calls announce that room may have come for the bucket's waiting line.
 *
 * @example
 * ```ts
 * wakeChannel("quotaflow", "gpt-4o") // "{quotaflow:gpt-4o}:wake"
 * ```
 */
export const wakeChannel = (namespace: string, bucket: string): string => `${bucketTag(namespace, bucket)}:wake`

const algorithmSuffix: Record<Algorithm, string> = {
  "token-bucket": "tb",
  "sliding-window": "sw",
  "fixed-window": "fw",
  "concurrency": "cc"
}

/**
 * Every key name of a bucket: the state, one per quota.
 *
 * @example
 * ```ts
 * bucketKeys("quotaflow", bucket) // ["{quotaflow:chat}:s", "{quotaflow:chat}:q0:tb"]
 * ```
 */
export const bucketKeys = (namespace: string, bucket: Bucket): Array<string> => {
  const tag = bucketTag(namespace, bucket.name)
  return [
    `${tag}:s`,
    ...bucket.quotas.map((quota, i) => `${tag}:q${i}:${algorithmSuffix[quota.algorithm]}`)
  ]
}

/**
 * The keys a call is given, in the order it expects them: the state, then the key of each sliding-window and
 * fixed-window quota in quota order (the only meters with a key of their own).
 *
 * @example
 * ```ts
 * scriptKeys("quotaflow", bucket) // ["{quotaflow:chat}:s", "{quotaflow:chat}:q1:sw"]
 * ```
 */
export const scriptKeys = (namespace: string, bucket: Bucket): Array<string> => {
  const all = bucketKeys(namespace, bucket)
  return [
    all[0],
    ...all.slice(1).filter((_, i) => bucket.quotas[i].algorithm === "sliding-window" || bucket.quotas[i].algorithm === "fixed-window")
  ]
}

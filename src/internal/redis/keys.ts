/**
 * The Redis key layout of a bucket. Every key of a bucket shares one hash tag, `{<namespace>:<bucket>}`, so a
 * script's keys always live in one Cluster slot, and the namespace and bucket name are escaped so that no name
 * can close the tag, split it, or reach into another namespace.
 *
 * ```text
 * {ns:bucket}:s          hash    `lb` lastBooked, `bu` blocked until (a provider's retry hint), and per quota i:
 *                                  token bucket   `i:t` tat, `i:e` epoch, `i:g` units charged, `i:l` last charge time,
 *                                                 `i:p` pending bookings "entry,amount,at;..." (in booking order)
 *                                  sliding window `i:n` total in the log
 *                                  concurrency    `i:f` in flight
 * {ns:bucket}:r          hash    open reservations: id -> "at g_1 ... g_n", one group per quota ("-" = no hold)
 * {ns:bucket}:x          zset    open reservations by expiry time (ms, Redis clock)
 * {ns:bucket}:n          string  reservation id counter (INCR); ids are "<Redis seconds>-<counter>"
 * {ns:bucket}:q<i>:sw    zset    sliding window log of quota i: member "entry/amount", score = booking time;
 *                                entry = reservation id, "<id>+" (usage settled on an uncharged metric) or
 *                                "o<n>" (usage the provider reported)
 * {ns:bucket}:q<i>:fw    hash    fixed windows of quota i: window index -> amount booked
 * {ns:bucket}:q<i>:tb|cc         (token bucket and concurrency keep their state in `:s`; the key is passed
 *                                 so that KEYS holds one entry per quota)
 * ```
 *
 * Every key gets a TTL at every call: until every booking has drained and every open reservation has expired.
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

const algorithmSuffix: Record<Algorithm, string> = {
  "token-bucket": "tb",
  "sliding-window": "sw",
  "fixed-window": "fw",
  "concurrency": "cc"
}

/**
 * The keys of a bucket in the order the scripts expect them: state, reservations, expiries, counter, one per quota.
 *
 * @example
 * ```ts
 * bucketKeys("quotaflow", bucket) // ["{quotaflow:chat}:s", "{quotaflow:chat}:r", "{quotaflow:chat}:x", "{quotaflow:chat}:n", "{quotaflow:chat}:q0:tb"]
 * ```
 */
export const bucketKeys = (namespace: string, bucket: Bucket): Array<string> => {
  const tag = bucketTag(namespace, bucket.name)
  return [
    `${tag}:s`,
    `${tag}:r`,
    `${tag}:x`,
    `${tag}:n`,
    ...bucket.quotas.map((quota, i) => `${tag}:q${i}:${algorithmSuffix[quota.algorithm]}`)
  ]
}

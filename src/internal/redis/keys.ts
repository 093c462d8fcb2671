/**
 * The Redis key layout of a bucket. Every key of a bucket shares one hash tag, `{<namespace>:<bucket>}`, so a
 * script's keys always live in one Cluster slot, and the namespace and bucket name are escaped so that no name
 * can close the tag, split it, or reach into another namespace.
 *
 * ```text
 * {ns:bucket}:s          hash    the bucket's state, and its open reservations:
 *                                  `state` the algorithms it was written for (a letter per quota: `t`, `s`, `f`,
 *                                        `c`), a space, then doubles packed with `struct` (little-endian):
 *                                        lastBooked, blockedUntil (a provider's retry hint), earliest expiry (a
 *                                        lower bound of the open reservations' expiries), the time every key
 *                                        expires at, open reservations, the last id's sequence number; then per
 *                                        quota: token bucket since, owed (tat = since + owed), epoch, units
 *                                        charged, last charge time, pending bookings; sliding window total in the
 *                                        log, entries in the log; concurrency in flight
 *                                  `p<i>` a token bucket's pending bookings "entry,amount,at;..." (in booking order)
 *                                  `<id>` an open reservation: the booking time and one hold per quota, packed
 *                                        (`<d` then `<Bdddd` per quota: kind 0 none / 1 pending / 2 held, amount,
 *                                        mark, after, chargedAt); ids are "<the Redis millisecond booked
 *                                        in>-<sequence>", which tells when each expires (that millisecond + 1 +
 *                                        reservationTtl)
 * {ns:bucket}:q<i>:sw    zset    sliding window log of quota i: member "entry/amount", score = booking time;
 *                                entry = reservation id, "<id>+" (usage settled on an uncharged metric) or
 *                                "o<n>" (usage the provider reported)
 * {ns:bucket}:q<i>:fw    hash    fixed windows of quota i: window index -> amount booked
 * {ns:bucket}:q<i>:tb|cc         (never created: token bucket and concurrency keep their state in `:s`)
 * ```
 *
 * Every key of a bucket expires at one time, kept in the state: once every booking has drained and every open
 * reservation has expired. A call that needs it later sets it again on every key, with time to spare; a key
 * created meanwhile gets the same expiry.
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

/**
 * The Redis backend's side of the buckets' waiting lines (`SharedLine`; the line itself is `lua/line.lua`): the
 * place each waiting caller holds, named once per waiter, and the wake-ups the buckets' channels bring, on one
 * subscriber connection opened by the first watch.
 *
 * @internal
 */
import { Effect } from "effect"
import { Cluster } from "ioredis"
import type { SharedLine } from "../../Backend.js"
import type { Bucket } from "../../Quota.js"
import { wakeChannel } from "./keys.js"
import { type RedisClient, type RedisFailure, tokens } from "./store.js"

/** A waiting caller's place: its name in the line, and how long it lasts without the caller asking again. */
export interface Place {
  readonly name: string
  readonly ttlMs: number
}

/**
 * The lines of one backend.
 *
 * @example
 * ```ts
 * const lines = makeLines(client, { namespace: "quotaflow", pollMs: 500, commandTimeoutMs: 500 }, store.leave)
 * const place = lines.placeOf(ticket) // { name: "k3j9x0a71", ttlMs: 1500 }
 * ```
 */
export interface Lines {
  readonly line: SharedLine
  /** The waiter's place, named on first use. */
  readonly placeOf: (waiter: object) => Place
  /** The waiter was admitted or refused: Redis took its place out already. */
  readonly forget: (waiter: object) => void
  /** Closes the subscriber connection, if one was opened. */
  readonly close: Effect.Effect<void>
}

export const makeLines = (
  client: RedisClient,
  options: { readonly namespace: string; readonly pollMs: number; readonly commandTimeoutMs: number },
  leaveInRedis: (bucket: Bucket, place: string) => Effect.Effect<unknown, RedisFailure>,
  closeClient: (client: RedisClient) => Effect.Effect<void>
): Lines => {
  const places = new WeakMap<object, Place>()
  const nextPlace = tokens()
  // A place outlives two polls and a command timeout: a process that is alive renews it before then.
  const ttlMs = 2 * options.pollMs + options.commandTimeoutMs
  const placeOf = (waiter: object): Place => {
    let place = places.get(waiter)
    if (place === undefined) {
      place = { name: nextPlace(), ttlMs }
      places.set(waiter, place)
    }
    return place
  }

  const watchers = new Map<string, Set<() => void>>()
  let subscriber: RedisClient | undefined
  const subscribed = (): RedisClient => {
    if (subscriber === undefined) {
      // Commands queue while it (re)connects, and it subscribes again by itself after a reconnect, whatever
      // the options of the client it copies (a user's may be lazy, with no offline queue).
      const created: RedisClient = client instanceof Cluster
        ? client.duplicate([], { enableOfflineQueue: true, lazyConnect: false })
        : client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: false })
      created.on("error", () => {})
      created.on("message", (channel: string) => watchers.get(channel)?.forEach((wake) => wake()))
      subscriber = created
    }
    return subscriber
  }

  const watch = (bucket: Bucket, wake: () => void) => {
    const channel = wakeChannel(options.namespace, bucket.name)
    let set = watchers.get(channel)
    if (set === undefined) {
      set = new Set()
      watchers.set(channel, set)
      // A failed subscription leaves the poll: wake-ups are a shortcut, not what correctness rests on.
      subscribed().subscribe(channel).catch(() => {})
    }
    set.add(wake)
    return () => {
      set.delete(wake)
      if (set.size === 0 && watchers.get(channel) === set) {
        watchers.delete(channel)
        subscriber?.unsubscribe(channel).catch(() => {})
      }
    }
  }

  const leave = (bucket: Bucket, waiter: object): Effect.Effect<void> => {
    const place = places.get(waiter)
    if (place === undefined) return Effect.void
    places.delete(waiter)
    // Unanswered, the place lapses on its own.
    return Effect.ignore(leaveInRedis(bucket, place.name))
  }

  return {
    line: { pollMs: options.pollMs, watch, leave },
    placeOf,
    forget: (waiter) => places.delete(waiter),
    close: Effect.suspend(() => (subscriber === undefined ? Effect.void : closeClient(subscriber)))
  }
}

/**
 * The in-process backend: quota state in this process's memory, time from Effect's `Clock` (so `TestClock`
 * drives it in tests). The default for a single process.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Layer } from "effect"
import { Backend, type BackendService, type ReserveResult } from "../Backend.js"
import { CapacityExceeded, ReservationNotFound } from "../Errors.js"
import { BucketState } from "../internal/bucketState.js"
import type { Bucket } from "../Quota.js"

/**
 * Makes a memory backend. Each bucket's state is created on first use.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend, MemoryBackend } from "quotaflow"
 *
 * const layer = Effect.map(MemoryBackend.make, (backend) => Backend.Backend.of(backend))
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<BackendService> = Effect.sync(() => {
  const states = new Map<string, BucketState>()
  const stateOf = (bucket: Bucket): BucketState => {
    let state = states.get(bucket.name)
    if (state === undefined) {
      state = new BucketState(bucket)
      states.set(bucket.name, state)
    }
    return state
  }

  return Backend.of({
    reserve: (bucket, charge, maxWaitMs) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<ReserveResult, CapacityExceeded> => {
        const outcome = stateOf(bucket).reserve(charge, now, maxWaitMs)
        switch (outcome._tag) {
          case "Reserved":
            return Effect.succeed({ _tag: "Reserved", reservation: { id: outcome.id, bucket: bucket.name, at: outcome.at } })
          case "Wait":
            return Effect.succeed(outcome)
          case "TooLarge":
            return Effect.fail(new CapacityExceeded({ bucket: bucket.name, reason: "too-large", metric: outcome.metric }))
        }
      }),
    settle: (bucket, id, actual) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        stateOf(bucket).settle(id, actual, now) ? Effect.void : Effect.fail(new ReservationNotFound({ bucket: bucket.name, id }))
      ),
    release: (bucket, id) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        stateOf(bucket).release(id, now) ? Effect.void : Effect.fail(new ReservationNotFound({ bucket: bucket.name, id }))
      ),
    observe: (bucket, used, blockForMs) =>
      Effect.map(Clock.currentTimeMillis, (now) => stateOf(bucket).observe(used, now + blockForMs, now)),
    forget: (bucket) => Effect.sync(() => states.delete(bucket.name)),
    status: (bucket, demand) => Effect.map(Clock.currentTimeMillis, (now) => stateOf(bucket).status(now, demand))
  })
})

/**
 * The memory backend as a layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { MemoryBackend, RateLimited } from "quotaflow"
 *
 * const limiter = RateLimited.layer({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 * const program = RateLimited.submit({ bucket: "chat" }, Effect.succeed("hi")).pipe(
 *   Effect.provide(limiter),
 *   Effect.provide(MemoryBackend.layer)
 * )
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<Backend> = Layer.effect(Backend, make)

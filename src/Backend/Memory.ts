/**
 * The in-process backend: quota state in this process's memory, time from Effect's `Clock` (so `TestClock`
 * drives it in tests). The default for a single process.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { Backend, type BackendService, type ReserveResult } from "../Backend.js"
import { CapacityExceeded, ReservationNotFound } from "../Errors.js"
import { BucketState } from "../internal/bucketState.js"
import type { Bucket } from "../Quota.js"

/**
 * Makes a memory backend on the `Clock` of the fiber that makes it (`TestClock` in tests), read to the
 * nanosecond. Each bucket's state is created on first use. Its `local` face serves the same state
 * synchronously.
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
export const make: Effect.Effect<BackendService> = Effect.map(Effect.clock, (clock) => {
  const states = new Map<string, BucketState>()
  const stateOf = (bucket: Bucket): BucketState => {
    let state = states.get(bucket.name)
    if (state === undefined) {
      state = new BucketState(bucket)
      states.set(bucket.name, state)
    } else if (state.bucket !== bucket) {
      // The same bucket at other limits (a provider reported lower ones): the state carries over.
      state.retune(bucket)
    }
    return state
  }
  // Fractional and monotonic (the clock's nanoseconds): a caller that fits 0.3 ms from now is admitted then,
  // not when the millisecond ticks over.
  const now = () => Number(clock.unsafeCurrentTimeNanos()) / 1e6

  const reserve = (bucket: Bucket, charge: ReadonlyArray<number>, maxWaitMs: number) =>
    Effect.suspend((): Effect.Effect<ReserveResult, CapacityExceeded> => {
      const outcome = stateOf(bucket).reserve(charge, now(), maxWaitMs)
      switch (outcome._tag) {
        case "Reserved":
          return Effect.succeed({ _tag: "Reserved", reservation: { id: outcome.id, bucket: bucket.name, at: outcome.at } })
        case "Wait":
          return Effect.succeed(outcome)
        case "TooLarge":
          return Effect.fail(new CapacityExceeded({ bucket: bucket.name, reason: "too-large", metric: outcome.metric }))
      }
    })

  return Backend.of({
    reserve,
    settle: (bucket, id, actual) =>
      Effect.suspend(() =>
        stateOf(bucket).settle(id, actual, now()) ? Effect.void : Effect.fail(new ReservationNotFound({ bucket: bucket.name, id }))
      ),
    release: (bucket, id) =>
      Effect.suspend(() =>
        stateOf(bucket).release(id, now()) ? Effect.void : Effect.fail(new ReservationNotFound({ bucket: bucket.name, id }))
      ),
    observe: (bucket, used, blockForMs) =>
      Effect.sync(() => {
        const at = now()
        stateOf(bucket).observe(used, at + blockForMs, at)
      }),
    forget: (bucket) => Effect.sync(() => states.delete(bucket.name)),
    status: (bucket, demand) => Effect.sync(() => stateOf(bucket).status(now(), demand)),
    local: { now, bucket: stateOf }
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

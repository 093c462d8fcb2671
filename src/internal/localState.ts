/**
 * The state of a backend that lives in this process, reachable without an effect: the limiter books and
 * settles through it synchronously, so a call that fits at once costs no fiber hop and no promise of its own.
 *
 * Keyed by the service object itself: a backend that wraps the memory backend (`{ ...memory, reserve: logged }`)
 * is a different object, so its own operations are never bypassed.
 *
 * @internal
 */
import { Effect } from "effect"
import type { BackendService, ReserveResult } from "../Backend.js"
import { CapacityExceeded } from "../Errors.js"
import type { Bucket } from "../Quota.js"
import type { BucketState, ReserveOutcome } from "./bucketState.js"

export interface LocalState {
  /** The time the backend books at, in epoch milliseconds (fractional). */
  readonly now: () => number
  readonly stateOf: (bucket: Bucket) => BucketState
}

const registry = new WeakMap<BackendService, LocalState>()

export const register = (backend: BackendService, local: LocalState): BackendService => {
  registry.set(backend, local)
  return backend
}

export const localStateOf = (backend: BackendService): LocalState | undefined => registry.get(backend)

/** A local reservation's outcome as a backend answers it. */
export const reserveResult = (bucket: string, outcome: ReserveOutcome): Effect.Effect<ReserveResult, CapacityExceeded> => {
  switch (outcome._tag) {
    case "Reserved":
      return Effect.succeed({ _tag: "Reserved", reservation: { id: outcome.id, bucket, at: outcome.at } })
    case "Wait":
      return Effect.succeed(outcome)
    case "TooLarge":
      return Effect.fail(new CapacityExceeded({ bucket, reason: "too-large", metric: outcome.metric }))
  }
}

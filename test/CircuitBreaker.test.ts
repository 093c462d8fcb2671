import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, TestClock } from "effect"
import { CircuitBreaker } from "../src/index.js"

const failing = Effect.fail("503 overloaded")

describe("CircuitBreaker", () => {
  it.effect("opens after the threshold of failures within the window, and fails fast while open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, failureWindow: "10 seconds", openFor: "30 seconds" })
      for (let i = 0; i < 3; i++) yield* Effect.flip(breaker.guard("m", failing))
      assert.strictEqual((yield* breaker.state("m"))._tag, "Open")
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(breaker.guard("m", Effect.succeed("never runs")))
      assert.strictEqual(error._tag, "CircuitOpen")
      assert.strictEqual(error._tag === "CircuitOpen" ? error.retryAfterMs : 0, 25_000)
      assert.strictEqual((yield* breaker.state("other"))._tag, "Closed")
    }))

  it.effect("failures spread wider than the window do not open it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, failureWindow: "10 seconds" })
      for (let i = 0; i < 5; i++) {
        yield* Effect.flip(breaker.guard("m", failing))
        yield* TestClock.adjust("6 seconds")
      }
      assert.deepStrictEqual(yield* breaker.state("m"), { _tag: "Closed", failures: 1 })
    }))

  it.effect("after openFor one probe goes through: success closes, failure reopens", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, openFor: "10 seconds" })
      yield* Effect.flip(breaker.guard("m", failing))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* breaker.state("m"))._tag, "HalfOpen")
      const gate = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(breaker.guard("m", Effect.as(Deferred.await(gate), "probe")))
      yield* TestClock.adjust(1)
      const second = yield* Effect.flip(breaker.guard("m", Effect.succeed("second")))
      assert.strictEqual(second._tag, "CircuitOpen") // only one probe at a time
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(probe), "probe")
      assert.strictEqual((yield* breaker.state("m"))._tag, "Closed")

      yield* Effect.flip(breaker.guard("m", failing))
      yield* TestClock.adjust("10 seconds")
      yield* Effect.flip(breaker.guard("m", failing)) // the probe fails
      assert.strictEqual((yield* breaker.state("m"))._tag, "Open")
    }))

  it.effect("interruptions and outcomes the predicate accepts do not count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1 })
      yield* Effect.flip(breaker.guard("m", Effect.fail(400), () => false))
      const fiber = yield* Effect.fork(breaker.guard("m", Effect.never))
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* breaker.state("m"))._tag, "Closed")
    }))
})

import { Clock, Effect, Exit, FastCheck as fc, Fiber, Layer, TestClock, TestContext } from "effect"
import { describe, expect, it } from "vitest"
import { MemoryBackendLive, RateLimited } from "../src/index.js"

const RPM = 6
const TPM = 1000
const WINDOW = 60_000

type Fate = "succeed" | "fail" | "interrupt-waiting" | "interrupt-running"

interface Call {
  readonly arrival: number
  readonly tokens: number
  readonly runMs: number
  readonly fate: Fate
  readonly usedFraction: number
  readonly interruptAfter: number
}

const callArb: fc.Arbitrary<Call> = fc.record({
  arrival: fc.integer({ min: 0, max: 120_000 }),
  tokens: fc.integer({ min: 0, max: TPM }),
  runMs: fc.integer({ min: 1, max: 20_000 }),
  fate: fc.constantFrom<Fate>("succeed", "succeed", "fail", "interrupt-waiting", "interrupt-running"),
  usedFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  interruptAfter: fc.integer({ min: 0, max: 30_000 })
})

interface Trace {
  start?: number
  end?: number
  charged: number
  final?: number
}

/** Runs the calls in virtual time and returns what happened to each, and the bucket's state at the end. */
const scenario = (calls: ReadonlyArray<Call>) =>
  Effect.gen(function*() {
    const traces: Array<Trace> = calls.map((c) => ({ charged: c.tokens }))
    const fibers = yield* Effect.forEach(calls, (call, i) =>
      Effect.fork(Effect.gen(function*() {
        yield* Effect.sleep(call.arrival)
        const work = Effect.gen(function*() {
          traces[i].start = yield* Clock.currentTimeMillis
          yield* Effect.sleep(call.runMs)
          traces[i].end = yield* Clock.currentTimeMillis
          if (call.fate === "fail") return yield* Effect.fail("provider error")
          return Math.floor(call.tokens * call.usedFraction)
        }).pipe(Effect.onInterrupt(() => Effect.map(Clock.currentTimeMillis, (t) => (traces[i].end = t))))
        const submitted = yield* Effect.fork(
          RateLimited.submit({ bucket: "chat", usage: { tokens: call.tokens } }, work, { actualUsage: (used) => ({ tokens: used }) })
        )
        if (call.fate === "interrupt-waiting" || call.fate === "interrupt-running") {
          yield* Effect.sleep(call.interruptAfter)
          yield* Fiber.interrupt(submitted)
        }
        const exit = yield* Fiber.await(submitted)
        if (Exit.isSuccess(exit)) traces[i].final = exit.value
      })))
    for (let t = 0; t < 40; t++) yield* TestClock.adjust("10 seconds")
    yield* Effect.forEach(fibers, Fiber.join)
    const status = yield* RateLimited.status("chat")
    return { traces, status }
  })

const Live = RateLimited.layer({
  buckets: {
    chat: {
      quotas: [
        { metric: "requests", limit: RPM, window: WINDOW },
        { metric: "tokens", limit: TPM, window: WINDOW }
      ]
    }
  }
}).pipe(Layer.provide(MemoryBackendLive))

/** A provider's token bucket: charge at start, refund at the end (floored at empty). */
const violations = (traces: ReadonlyArray<Trace>, amount: (t: Trace) => number, final: (t: Trace) => number, limit: number) => {
  const events = traces.filter((t) => t.start !== undefined).flatMap((t) => [
    { at: t.start ?? 0, delta: amount(t), order: 1 },
    { at: t.end ?? Infinity, delta: final(t) - amount(t), order: 0 }
  ]).sort((a, b) => a.at - b.at || a.order - b.order)
  let level = 0
  let last = 0
  let count = 0
  for (const e of events) {
    if (e.at === Infinity) break
    level = Math.max(0, level - ((e.at - last) * limit) / WINDOW)
    last = e.at
    level = Math.max(0, level + e.delta)
    if (e.delta > 0 && level > limit + 1e-6) count++
  }
  return count
}

describe("RateLimited properties (virtual time)", () => {
  it("whatever fails or is interrupted, every reservation is settled or released and no quota is exceeded", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(callArb, { minLength: 1, maxLength: 25 }), async (calls) => {
        const { traces, status } = await Effect.runPromise(
          scenario(calls).pipe(Effect.provide(Live), Effect.provide(TestContext.TestContext))
        )
        expect(status.open).toBe(0)
        expect(status.queued).toBe(0)
        expect(violations(traces, () => 1, () => 1, RPM)).toBe(0)
        expect(violations(traces, (t) => t.charged, (t) => t.final ?? t.charged, TPM)).toBe(0)
        // FIFO: a call that arrived strictly earlier never started later than one that arrived after it.
        calls.forEach((a, i) =>
          calls.forEach((b, j) => {
            const sa = traces[i].start
            const sb = traces[j].start
            if (sa !== undefined && sb !== undefined && a.arrival < b.arrival) expect(sa).toBeLessThanOrEqual(sb)
          })
        )
      }),
      { numRuns: 60 }
    )
  }, 120_000)
})

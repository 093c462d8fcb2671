import { describe, expect, it } from "vitest"
import { BucketState } from "../../src/internal/bucketState.js"
import type { Algorithm, Bucket } from "../../src/Quota.js"

const bucket = (algorithm: Algorithm, limit = 100): Bucket => ({
  name: "b",
  quotas: [{ metric: "tokens", limit, windowMs: 1000, algorithm, refunds: true }],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: Infinity
})

describe("BucketState.observe", () => {
  it("a retry hint blocks every admission until it has passed", () => {
    const state = new BucketState(bucket("token-bucket"))
    state.observe([undefined], 5_000, 1_000)
    expect(state.reserve([1], 1_000, 0)).toEqual({ _tag: "Wait", retryAfterMs: 4_000 })
    expect(state.status(1_000, [1]).waitMs).toBe(4_000)
    expect(state.reserve([1], 5_000, 0)).toMatchObject({ _tag: "Reserved", at: 5_000 })
  })

  for (const algorithm of ["token-bucket", "sliding-window", "fixed-window"] as const) {
    it(`${algorithm}: usage reported by the provider raises ours, never lowers it`, () => {
      const state = new BucketState(bucket(algorithm))
      state.reserve([30], 0, 0)
      state.observe([80], -Infinity, 0) // someone else on the key used 50 more
      expect(state.status(0, [1]).quotas[0].used).toBe(80)
      expect(state.reserve([30], 0, 0)._tag).toBe("Wait")
      expect(state.reserve([20], 0, 0)._tag).toBe("Reserved")
      state.observe([10], -Infinity, 0)
      expect(state.status(0, [1]).quotas[0].used).toBe(100)
    })
  }

  it("concurrency quotas learn nothing from headers", () => {
    const state = new BucketState(bucket("concurrency", 2))
    state.observe([2], -Infinity, 0)
    expect(state.reserve([1], 0, 0)._tag).toBe("Reserved")
  })
})

describe("token bucket at epoch-millisecond times", () => {
  it("admits exactly its rate: 0.05 ms per booking does not round away at 1.8e12", () => {
    // 20,000 per second of 1 unit each: every booking adds 0.05 ms, which a sum at 1.8e12 would round to a
    // multiple of 2^-12 ms, 0.1% of the rate.
    const state = new BucketState(bucket("token-bucket", 20_000))
    const start = 1_795_000_000_000
    let admitted = 0
    for (let now = start; now <= start + 10_000; now++) {
      while (state.reserve([1], now, 0)._tag === "Reserved") admitted++
    }
    expect(admitted).toBe(20_000 + 10_000 * 20)
  })
})

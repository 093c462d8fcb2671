/**
 * A limiter configured with nothing but its provider, against the emulator over real HTTP: the bucket starts with
 * one call in flight, learns its limits and their window from the first response's headers, and then runs the
 * key at its limit without a 429.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { minimumMs } from "../../src/demo/Scenario.js"
import { makeWorkload } from "../../src/demo/Workload.js"
import { createRateLimiter } from "../../src/index.js"
import { runChats, withEmulator } from "../support/emulator.js"

const windowMs = 2_000
const limits = { requests: 100, tokens: 20_000 }

describe("a limiter with no limits configured", () => {
  it("learns them from the headers and runs at the limit with zero 429s, at least 90% efficient", async () => {
    await withEmulator({ style: "openai", windowMs, limits, latency: { baseMs: 20, perTokenMs: 0 } }, async (emulator) => {
      const limiter = createRateLimiter({ provider: "openai" })
      const calls = makeWorkload(50, 1)
      const { statuses, wallMs } = await runChats(limiter, emulator.url, calls)
      const status = await limiter.status("gpt-4o")
      await limiter.close()
      const stats = await Effect.runPromise(emulator.stats)

      expect(statuses).toEqual(calls.map(() => 200))
      expect(stats.rejected429).toBe(0)
      expect(stats.violations).toBe(0)
      // What it learnt: the limits, and a window within a few percent above the emulator's.
      const tokens = status.quotas.find((q) => q.metric === "tokens" && q.algorithm === "token-bucket")
      expect(tokens?.limit).toBe(limits.tokens)
      expect(tokens?.windowMs).toBeGreaterThanOrEqual(windowMs)
      expect(tokens?.windowMs).toBeLessThan(windowMs * 1.05)
      const charged = calls.reduce((sum, call) => sum + call.promptTokens + call.maxTokens, 0)
      const efficiency = minimumMs("token-bucket", charged, limits.tokens, windowMs) / wallMs
      console.log(`discovery: ${calls.length} calls, ${charged} tokens in ${Math.round(wallMs)} ms, efficiency ${efficiency.toFixed(3)}`)
      expect(efficiency).toBeGreaterThan(0.9)
    })
  }, 60_000)
})

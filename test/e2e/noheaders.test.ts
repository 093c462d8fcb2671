/**
 * A provider that sends no rate-limit headers (as Bedrock and Gemini behave), and no limits configured: the
 * limiter has only the provider's refusals and their retry hints to go by.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { minimumMs } from "../../src/demo/Scenario.js"
import { makeWorkload } from "../../src/demo/Workload.js"
import { createRateLimiter } from "../../src/index.js"
import { runChats, withEmulator } from "../support/emulator.js"

const windowMs = 2_000
const limits = { requests: 200, tokens: 20_000 }

describe("a provider without rate-limit headers", () => {
  it("learns the rate from refusals alone: under 2% refused once settled, at least 80% efficient", async () => {
    await withEmulator({ style: "openai", windowMs, limits, limitHeaders: false, latency: { baseMs: 20, perTokenMs: 0 } }, async (emulator) => {
      const limiter = createRateLimiter({ provider: "openai", retry: { maxAttempts: 10, baseDelay: "20 millis" } })
      const calls = makeWorkload(120, 3)
      const refusedAt: Array<number> = []
      const { statuses, wallMs } = await runChats(limiter, emulator.url, calls, (status, atMs) => {
        if (status === 429) refusedAt.push(atMs)
      })
      const status = await limiter.status("gpt-4o")
      await limiter.close()
      const stats = await Effect.runPromise(emulator.stats)

      expect(statuses).toEqual(calls.map(() => 200))
      expect(stats.violations).toBe(0)
      const charged = calls.reduce((sum, call) => sum + call.promptTokens + call.maxTokens, 0)
      const efficiency = minimumMs("token-bucket", charged, limits.tokens, windowMs) / wallMs
      // Settled: the second half of the run.
      const late = refusedAt.filter((at) => at > wallMs / 2).length
      const tokens = status.quotas.find((q) => q.metric === "tokens" && q.algorithm === "token-bucket")
      console.log(
        `no headers: ${calls.length} calls in ${Math.round(wallMs)} ms, efficiency ${efficiency.toFixed(3)}; refused ${refusedAt.length} ` +
          `(${late} in the second half); learnt tokens ${tokens?.limit} per ${tokens?.windowMs} ms`
      )
      expect(late / (calls.length / 2)).toBeLessThan(0.02)
      expect(efficiency).toBeGreaterThan(0.8)
    })
  }, 60_000)
})

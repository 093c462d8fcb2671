/**
 * Someone else shares the key: a consumer outside quotaflow spends 30% of the token quota while quotaflow runs
 * the rest of it, against the emulator over real HTTP. The headers of each response tell quotaflow what the key
 * has left; it must leave the outside consumer's share alone.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { makeWorkload } from "../../src/demo/Workload.js"
import { createRateLimiter } from "../../src/index.js"
import { chat, runChats, withEmulator } from "../support/emulator.js"

const windowMs = 2_000
const limits = { requests: 200, tokens: 20_000 }

describe("a key shared with a consumer outside quotaflow", () => {
  it("quotaflow adapts to the outside 30% and stays under 1% of 429s", async () => {
    await withEmulator({ style: "openai", windowMs, limits, latency: { baseMs: 20, perTokenMs: 0 } }, async (emulator) => {
      // 300 tokens every 100 ms: 6,000 of the 20,000 per window.
      let outside = true
      const outsideStatuses: Array<number> = []
      const outsideLoop = (async () => {
        while (outside) {
          const response = await chat(emulator.url, { prompt: 200, maxTokens: 100 })
          outsideStatuses.push(response.status)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      })()
      await new Promise((resolve) => setTimeout(resolve, 500))

      const limiter = createRateLimiter({
        provider: "openai",
        buckets: {
          "gpt-4o": {
            quotas: [{ metric: "requests", limit: limits.requests, window: windowMs }, { metric: "tokens", limit: limits.tokens, window: windowMs }],
            skew: "200 millis"
          }
        }
      })
      const calls = makeWorkload(120, 2)
      let refused = 0
      const { statuses, wallMs } = await runChats(limiter, emulator.url, calls, (status) => {
        if (status === 429) refused++
      })
      outside = false
      await outsideLoop
      await limiter.close()
      const stats = await Effect.runPromise(emulator.stats)

      expect(statuses).toEqual(calls.map(() => 200))
      expect(stats.violations).toBe(0)
      const attempts = calls.length + refused
      // Quotaflow's share of the key's token rate while it ran; the bucket's initial burst counts in it.
      const charged = calls.reduce((sum, call) => sum + call.promptTokens + call.maxTokens, 0)
      const share = charged / ((limits.tokens * wallMs) / windowMs)
      console.log(
        `outside consumer: quotaflow ${attempts} attempts, ${refused} refused, ${charged} tokens in ${Math.round(wallMs)} ms ` +
          `(${(100 * share).toFixed(0)}% of the key); outside ${outsideStatuses.length} calls, ${outsideStatuses.filter((s) => s === 429).length} refused`
      )
      expect(refused / attempts).toBeLessThan(0.01)
    })
  }, 60_000)
})

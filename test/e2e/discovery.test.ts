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

  it("Anthropic style: callers queued under the first guess of the window move up once it is learnt", async () => {
    // Anthropic's first answers cannot tell the window (whole-second resets, remainders rounded to thousands):
    // the bucket first runs at a one-minute guess, and learns the 2 s window a few answers later.
    const anthropicLimits = { requests: 100, input_tokens: 20_000, output_tokens: 8_000 }
    await withEmulator({ style: "anthropic", windowMs, limits: anthropicLimits, latency: { baseMs: 20, perTokenMs: 0 } }, async (emulator) => {
      const limiter = createRateLimiter({ provider: "anthropic" })
      const prompt = "Hello ".repeat(800) // 1,200 input tokens: 50 calls are three windows' worth
      const started = performance.now()
      const statuses = await Promise.all(Array.from({ length: 50 }, () =>
        limiter.fetch(`${emulator.url}/v1/messages`, {
          method: "POST",
          body: JSON.stringify({ model: "claude-sonnet-4-20250514", max_tokens: 100, x_completion_tokens: 50, messages: [{ role: "user", content: prompt }] })
        }).then(async (response) => {
          await response.text()
          return response.status
        })))
      const wallMs = performance.now() - started
      await limiter.close()
      const stats = await Effect.runPromise(emulator.stats)
      expect(statuses).toEqual(Array(50).fill(200))
      expect(stats.rejected429).toBe(0)
      const efficiency = minimumMs("token-bucket", stats.charged.input_tokens, anthropicLimits.input_tokens, windowMs) / wallMs
      console.log(`discovery (anthropic): 50 calls in ${Math.round(wallMs)} ms, efficiency ${efficiency.toFixed(3)}`)
      // Before callers were re-planned they waited out the guessed minute: 50 calls took about 56 s.
      expect(efficiency).toBeGreaterThan(0.7)
    })
  }, 60_000)
})

import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type DemoProgress, type DemoSummary, runDemo } from "../../src/demo/Demo.js"
import { minimumMs } from "../../src/demo/Scenario.js"
import { makeWorkload } from "../../src/demo/Workload.js"

// Real HTTP against a real emulator in real time: a 2 s "minute" and limits small enough that the binding quota
// needs a few windows, so that the fixed costs (the last response's latency) stay small next to it.
const windowMs = 2_000

const assertClean = (summary: DemoSummary, calls: number) => {
  assert.strictEqual(summary.ok, calls)
  assert.strictEqual(summary.failed, 0)
  assert.strictEqual(summary.rejected429.emulator, 0)
  assert.strictEqual(summary.rejected429.responses, 0)
  assert.strictEqual(summary.violations, 0)
  for (const quota of summary.quotas) assert.isAtMost(quota.peak, quota.limit, `peak of ${quota.metric}`)
}

describe("runDemo", () => {
  it.live("anthropic, token bucket: no 429s, no violations, above 90% of the theoretical minimum", () =>
    Effect.gen(function*() {
      const reports: Array<DemoProgress> = []
      const summary = yield* runDemo({
        style: "anthropic",
        calls: 60,
        windowMs,
        seed: 1,
        limits: { requests: 60, input_tokens: 16_000, output_tokens: 4_000 },
        onProgress: (p) => Effect.sync(() => void reports.push(p))
      })
      assertClean(summary, 60)
      assert.strictEqual(summary.bindingMetric, "output_tokens")
      // The minimum counts the tokens actually generated, as settled.
      const generated = makeWorkload(60, 1).reduce((sum, call) => sum + call.completionTokens, 0)
      assert.strictEqual(summary.quotas.find((q) => q.metric === "output_tokens")?.total, generated)
      assert.strictEqual(summary.minimumMs, minimumMs("token-bucket", generated, 4_000, windowMs))
      assert.isAbove(summary.efficiency ?? 0, 0.9)
      assert.isAtMost(summary.efficiency ?? 1, 1)
      assert.isAtMost(summary.waitMs.p50, summary.waitMs.p99)
      // Progress was reported while the calls ran and ends with every call done.
      assert.isAbove(reports.length, 10)
      assert.strictEqual(reports.at(-1)?.done, 60)
      assert.strictEqual(reports.at(-1)?.queued, 0)
    }), 30_000)

  it.live("openai, token bucket: prompt + max_tokens kept; no 429s, no violations, above 90%", () =>
    Effect.gen(function*() {
      const summary = yield* runDemo({
        style: "openai",
        calls: 60,
        windowMs,
        seed: 1,
        limits: { requests: 60, tokens: 20_000 }
      })
      assertClean(summary, 60)
      assert.strictEqual(summary.bindingMetric, "tokens")
      const charged = makeWorkload(60, 1).reduce((sum, call) => sum + call.promptTokens + call.maxTokens, 0)
      assert.strictEqual(summary.quotas.find((q) => q.metric === "tokens")?.total, charged)
      assert.isAbove(summary.efficiency ?? 0, 0.9)
    }), 30_000)

  it.effect("rejects options the workload cannot run under", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(runDemo({ style: "anthropic", limits: { requests: 10, input_tokens: 10_000, output_tokens: 500 } }))
      assert.strictEqual(error.reason, "invalid-options")
      assert.include(error.message, "limits.output_tokens must be at least 1024")
      const calls = yield* Effect.flip(runDemo({ calls: 0 }))
      assert.include(calls.message, "calls must be a positive integer")
    }))
})

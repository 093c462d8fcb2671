import { assert, describe, it } from "@effect/vitest"
import { admissionCharge, finalCharge, type Style } from "../../src/emulator/Admission.js"
import { makeAudit } from "../../src/emulator/Audit.js"
import { type Algorithm, type Charge, type Decision, makeLedger, metrics, type Quotas } from "../../src/emulator/Limits.js"
import { goDuration } from "../../src/emulator/RateLimitHeaders.js"
import { prng } from "./support.js"

const admitted = (d: Decision) => d._tag === "Admitted"
const waitOf = (d: Decision) => (d._tag === "RateLimited" ? d.retryAfterMs : -1)

describe("Limits", () => {
  for (const algorithm of ["token-bucket", "sliding-window"] as const) {
    it(`${algorithm}: the retry hint is exactly the time until the request fits`, () => {
      const ledger = makeLedger({ tokens: { limit: 1000, windowMs: 60_000 } }, algorithm)
      assert.isTrue(admitted(ledger.admit({ tokens: 600 }, 0)))
      assert.isTrue(admitted(ledger.admit({ tokens: 300 }, 6_000)))
      const rejected = ledger.admit({ tokens: 500 }, 6_000)
      assert.strictEqual(rejected._tag, "RateLimited")
      const wait = waitOf(rejected)
      // bucket: 900 - 100 drained = 800 in use, 300 over at 1000/60s -> 18s; window: the 600 leaves at 60s
      assert.strictEqual(wait, algorithm === "token-bucket" ? 18_000 : 54_000)
      assert.strictEqual(ledger.admit({ tokens: 500 }, 6_000 + wait - 1)._tag, "RateLimited")
      assert.isTrue(admitted(ledger.admit({ tokens: 500 }, 6_000 + wait)))
      assert.strictEqual(ledger.stats().violations, 0)
      assert.strictEqual(ledger.stats().rejected429, 2)
    })
  }

  it("a charge larger than a limit is TooLarge, not rate limited", () => {
    const ledger = makeLedger({ output_tokens: { limit: 100, windowMs: 60_000 } }, "token-bucket")
    assert.deepStrictEqual(ledger.admit({ requests: 1, output_tokens: 101 }, 0), {
      _tag: "TooLarge",
      metric: "output_tokens",
      limit: 100,
      requested: 101
    })
    assert.strictEqual(ledger.stats().rejected400, 1)
  })

  it("token bucket: a refund is given back but floored at empty", () => {
    const ledger = makeLedger({ output_tokens: { limit: 1000, windowMs: 1000 } }, "token-bucket")
    const first = ledger.admit({ output_tokens: 800 }, 0)
    assert(first._tag === "Admitted")
    // 700 ms later 700 have drained, 100 in use; a refund of 700 cannot go below empty
    ledger.settle(first.ticket, { output_tokens: 100 }, 700)
    assert.strictEqual(ledger.status(700).output_tokens?.used, 0)
    assert.isTrue(admitted(ledger.admit({ output_tokens: 1000 }, 700)))
    assert.strictEqual(ledger.stats().charged.output_tokens, 1100)
    assert.strictEqual(ledger.stats().violations, 0)
  })

  it("sliding window: a correction lowers the entry's amount", () => {
    const ledger = makeLedger({ output_tokens: { limit: 1000, windowMs: 1000 } }, "sliding-window")
    const first = ledger.admit({ output_tokens: 800 }, 0)
    assert(first._tag === "Admitted")
    assert.strictEqual(ledger.admit({ output_tokens: 800 }, 10)._tag, "RateLimited")
    ledger.settle(first.ticket, { output_tokens: 150 }, 20)
    assert.isTrue(admitted(ledger.admit({ output_tokens: 800 }, 20)))
    assert.strictEqual(ledger.status(20).output_tokens?.remaining, 50)
    assert.strictEqual(ledger.status(20).output_tokens?.resetMs, 1000)
  })

  it("the audit detects overruns the enforcement would have prevented", () => {
    const window = makeAudit("sliding-window", { limit: 10, windowMs: 1000 })
    assert.isTrue(window.admit(1, 6, 0))
    assert.isFalse(window.admit(2, 5, 999))
    assert.isTrue(window.admit(3, 5, 1500))
    const curve = makeAudit("token-bucket", { limit: 10, windowMs: 1000 })
    assert.isTrue(curve.admit(1, 10, 0))
    assert.isTrue(curve.admit(2, 5, 500))
    assert.isFalse(curve.admit(3, 1, 500))
    assert.isTrue(curve.admit(4, 1, 700))
  })

  // A random workload with both admission styles; checks the enforcement against a brute-force replay.
  for (const algorithm of ["token-bucket", "sliding-window"] as const satisfies ReadonlyArray<Algorithm>) {
    for (const style of ["openai", "anthropic"] as const satisfies ReadonlyArray<Style>) {
      it(`${algorithm} / ${style}: random workload never exceeds a limit`, () => {
        const quotas: Quotas = style === "openai"
          ? { requests: { limit: 20, windowMs: 1000 }, tokens: { limit: 5000, windowMs: 1000 } }
          : {
            requests: { limit: 20, windowMs: 1000 },
            input_tokens: { limit: 3000, windowMs: 1000 },
            output_tokens: { limit: 2000, windowMs: 1000 },
            tokens: { limit: 4500, windowMs: 1000 }
          }
        const ledger = makeLedger(quotas, algorithm)
        const random = prng(algorithm.length * 31 + style.length)
        const open: Array<{ ticket: number; end: number; final: Charge }> = []
        const log: Array<{ at: number; charge: Charge }> = []
        let now = 0
        for (let i = 0; i < 3000; i++) {
          now += Math.floor(random() * 20)
          for (const o of open.filter((o) => o.end <= now)) ledger.settle(o.ticket, o.final, o.end)
          open.splice(0, open.length, ...open.filter((o) => o.end > now))
          const sizes = {
            promptTokens: 1 + Math.floor(random() * 500),
            maxTokens: 1 + Math.floor(random() * 400),
            completionTokens: 0
          }
          const withCompletion = { ...sizes, completionTokens: Math.floor(random() * sizes.maxTokens) }
          const decision = ledger.admit(admissionCharge(style, withCompletion), now)
          if (decision._tag === "Admitted") {
            const final = finalCharge(style, withCompletion)
            open.push({ ticket: decision.ticket, end: now + Math.floor(random() * 300), final })
            log.push({ at: now, charge: admissionCharge(style, withCompletion) })
          } else {
            assert.strictEqual(decision._tag, "RateLimited")
            assert.isAbove(waitOf(decision), 0)
          }
        }
        const stats = ledger.stats()
        assert.isAbove(stats.admitted, 100)
        assert.isAbove(stats.rejected429, 100)
        assert.strictEqual(stats.violations, 0)
        for (const metric of metrics) {
          const quota = quotas[metric]
          if (quota !== undefined) assert.isAtMost(stats.peak[metric] ?? 0, quota.limit)
        }
        if (algorithm === "sliding-window" && style === "openai") {
          // openai charges are never refunded: the admission log is the final charge
          for (const { at } of log) {
            const inWindow = log.filter((e) => e.at > at - 1000 && e.at <= at)
            assert.isAtMost(inWindow.reduce((n, e) => n + (e.charge.tokens ?? 0), 0), 5000)
            assert.isAtMost(inWindow.length, 20)
          }
        }
      })
    }
  }

  it("goDuration formats like Go's time.Duration", () => {
    assert.strictEqual(goDuration(0), "0s")
    assert.strictEqual(goDuration(20), "20ms")
    assert.strictEqual(goDuration(12.2), "13ms")
    assert.strictEqual(goDuration(1000), "1s")
    assert.strictEqual(goDuration(1500), "1.5s")
    assert.strictEqual(goDuration(360_000), "6m0s")
    assert.strictEqual(goDuration(61_250), "1m1.25s")
    assert.strictEqual(goDuration(3_723_000), "1h2m3s")
  })
})

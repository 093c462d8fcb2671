import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { createRateLimiter } from "../../src/index.js"
import * as Provider from "../../src/Provider.js"

const NOW = Date.UTC(2025, 10, 8, 12, 0, 0)

describe("Provider.make", () => {
  const gateway = Provider.make({ name: "gateway" })

  it("fills every part with OpenAI-compatible behaviour", () => {
    expect(gateway.name).toBe("gateway")
    expect(gateway.charging).toMatchObject({ metrics: ["requests", "tokens"], refunds: false })
    // ceil(2 / 3.5) + 4 per message, plus max_tokens.
    expect(Either.getOrThrow(gateway.chargeOf({ model: "m", messages: [{ role: "user", content: "Hi" }], max_tokens: 10 }))).toEqual({
      tokens: 15
    })
    expect(Either.getOrThrow(gateway.chargeOf({ model: "m", messages: [] }))).toEqual({ tokens: 4096 })
    expect(Either.isLeft(gateway.chargeOf("not an object"))).toBe(true)
    expect(gateway.usageOf({ usage: { prompt_tokens: 3, completion_tokens: 4 } })).toEqual({ tokens: 7 })
    expect(gateway.streamUsage({ type: "response.completed", response: { usage: { input_tokens: 3, output_tokens: 4 } } })).toEqual({ tokens: 7 })
    expect(gateway.retryAfter(429, { "retry-after": "2" }, "", NOW)).toEqual({ kind: "rate-limited", retry: true, delayMs: 2_000, source: "retry-after" })
    expect(gateway.family("m-20250101", { m: "shared" })).toBe("m-20250101")
    expect(gateway.family("m", { m: "shared" })).toBe("shared")
    expect(gateway.quotas({ rpm: 60, tpm: 1_000 })).toEqual([
      { metric: "requests", limit: 60, window: "1 minute" },
      { metric: "tokens", limit: 1_000, window: "1 minute", refunds: false }
    ])
  })

  it("reads x-ratelimit-* headers with resets as Go durations, seconds from now or epoch seconds", () => {
    expect(
      gateway.parseHeaders({
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-reset-tokens": "30",
        "x-ratelimit-remaining-images": "0",
        "x-ratelimit-reset-images": String(NOW / 1000 + 5)
      }, NOW)
    ).toEqual([
      { metric: "requests", limit: 60, remaining: 59, resetAt: NOW + 1_000 },
      { metric: "tokens", limit: 1_000, resetAt: NOW + 30_000 },
      { metric: "images", remaining: 0, resetAt: NOW + 5_000 }
    ])
  })

  it("keeps what is given: refunds (with its rule and quotas), family, any function", () => {
    const own = Provider.make({
      name: "own",
      charging: { refunds: true },
      defaultMaxTokens: 100,
      family: (model) => model.replace(/-\d{8}$/, ""),
      usageOf: () => ({ tokens: 1 })
    })
    expect(own.charging.refunds).toBe(true)
    expect(own.charging.rule).toContain("settled to the usage")
    expect(own.quotas({ tpm: 10 })).toEqual([{ metric: "tokens", limit: 10, window: "1 minute", refunds: true }])
    expect(Either.getOrThrow(own.chargeOf({ messages: [] }))).toEqual({ tokens: 100 })
    expect(own.family("m-20250101")).toBe("m")
    expect(own.usageOf({})).toEqual({ tokens: 1 })
    // The stream reader defaults to the body reader given.
    expect(own.streamUsage({})).toEqual({ tokens: 1 })
  })

  it("Provider.get returns a provider given as itself", () => {
    expect(Either.getOrThrow(Provider.get(gateway))).toBe(gateway)
  })

  it("a limiter takes a provider of its own: an unconfigured bucket learns its limits from that provider's headers", async () => {
    const limiter = createRateLimiter({ provider: Provider.make({ name: "gateway", charging: { refunds: true } }) })
    try {
      const answer = await limiter.submit({ bucket: "m", usage: { tokens: 1_200 } }, async () =>
        new Response("{}", {
          headers: {
            "content-type": "application/json",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "28800",
            "x-ratelimit-reset-tokens": "2.4"
          }
        }))
      expect(answer.status).toBe(200)
      const tokens = (await limiter.status("m")).quotas.find((quota) => quota.metric === "tokens")
      expect(tokens?.limit).toBe(30_000)
    } finally {
      await limiter.close()
    }
  })
})

import { describe, expect, it } from "@effect/vitest"
import * as Provider from "../../src/Provider.js"
import { parseGoDuration, parseHttpDate, parseRfc3339 } from "../../src/internal/provider/headers.js"

const NOW = Date.UTC(2025, 10, 8, 12, 0, 0) // 2025-11-08T12:00:00Z

const find = (limits: ReadonlyArray<Provider.ReportedLimit>, metric: string) => limits.find((l) => l.metric === metric)

describe("Go durations", () => {
  it.each([
    ["1s", 1_000],
    ["6m0s", 360_000],
    ["12ms", 12],
    ["9ms", 9],
    ["6ms", 6],
    ["20ms", 20],
    ["1.5s", 1_500],
    ["2m59.56s", 179_560],
    ["7.66s", 7_660],
    ["1h2m3.5s", 3_723_500],
    ["0", 0],
    ["0s", 0],
    ["250us", 0.25],
    ["250\u00b5s", 0.25],
    ["250\u03bcs", 0.25],
    ["1500000ns", 1.5]
  ])("parses %s", (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9)
  })

  it.each(["", "s", "1", "-1s", "1x", "1.5", "soon", "1s2", " m"])("rejects %j", (text) => {
    expect(parseGoDuration(text)).toBeUndefined()
  })
})

describe("timestamps", () => {
  it("parses RFC 3339 with Z, offsets and fractions", () => {
    expect(parseRfc3339("2025-11-08T12:00:06Z")).toBe(NOW + 6_000)
    expect(parseRfc3339("2025-11-08T13:00:06.250+01:00")).toBe(NOW + 6_250)
    expect(parseRfc3339("2025-11-08")).toBeUndefined()
    expect(parseRfc3339("tomorrow")).toBeUndefined()
  })

  it("parses HTTP dates", () => {
    expect(parseHttpDate("Sat, 08 Nov 2025 12:00:30 GMT")).toBe(NOW + 30_000)
    expect(parseHttpDate("Saturday, 08-Nov-25 12:00:30 GMT")).toBe(NOW + 30_000)
    expect(parseHttpDate("30")).toBeUndefined()
    expect(parseHttpDate("garbage")).toBeUndefined()
  })
})

describe("OpenAI headers", () => {
  const { openai } = Provider.providers

  it("reads the documentation sample (60 requests, 150000 tokens, resets 1s and 6m0s)", () => {
    const limits = openai.parseHeaders(
      {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "requests", window: "1 minute", limit: 60, remaining: 59, resetAt: NOW + 1_000 },
      { metric: "tokens", window: "1 minute", limit: 150_000, remaining: 149_984, resetAt: NOW + 360_000 }
    ])
  })

  it("reads observed values (5000/4999 in 12ms, 160000/159976 in 9ms) from fetch Headers", () => {
    const headers = new Headers({
      "X-RateLimit-Limit-Requests": "5000",
      "X-RateLimit-Remaining-Requests": "4999",
      "X-RateLimit-Reset-Requests": "12ms",
      "X-RateLimit-Limit-Tokens": "160000",
      "X-RateLimit-Remaining-Tokens": "159976",
      "X-RateLimit-Reset-Tokens": "9ms"
    })
    const limits = openai.parseHeaders(headers, NOW)
    expect(find(limits, "requests")).toEqual({ metric: "requests", window: "1 minute", limit: 5000, remaining: 4999, resetAt: NOW + 12 })
    expect(find(limits, "tokens")).toEqual({ metric: "tokens", window: "1 minute", limit: 160_000, remaining: 159_976, resetAt: NOW + 9 })
  })

  it("reads 10000/9999 in 6ms, and image limits without a window", () => {
    const limits = openai.parseHeaders(
      {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "X-RateLimit-Limit-Images": "5",
        "X-RateLimit-Remaining-Images": "4",
        "X-RateLimit-Reset-Images": "1s"
      },
      NOW
    )
    expect(find(limits, "requests")?.resetAt).toBe(NOW + 6)
    expect(find(limits, "images")).toEqual({ metric: "images", limit: 5, remaining: 4, resetAt: NOW + 1_000 })
  })

  it("skips malformed values and keeps the rest", () => {
    const limits = openai.parseHeaders(
      {
        "x-ratelimit-limit-requests": "sixty",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "soon",
        "x-ratelimit-limit-tokens": "",
        "x-ratelimit-reset-tokens": "-3s"
      },
      NOW
    )
    expect(limits).toEqual([{ metric: "requests", window: "1 minute", remaining: 59 }])
  })

  it("reports nothing when there are no rate-limit headers", () => {
    expect(openai.parseHeaders({ "content-type": "application/json" }, NOW)).toEqual([])
  })
})

describe("Azure OpenAI headers", () => {
  const azure = Provider.providers["azure-openai"]

  it("reads the values observed on a 429 (8, 8000, 7, 1014)", () => {
    const limits = azure.parseHeaders(
      {
        "x-ratelimit-limit-requests": "8",
        "x-ratelimit-limit-tokens": "8000",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-remaining-tokens": "1014"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "requests", limit: 8, remaining: 7 },
      { metric: "tokens", window: "1 minute", limit: 8000, remaining: 1014 }
    ])
  })

  it("ignores -1 (unknown), with the reset that comes with it", () => {
    const limits = azure.parseHeaders(
      {
        "x-ratelimit-limit-tokens": "-1",
        "x-ratelimit-reset-tokens": "0",
        "x-ratelimit-limit-requests": "8",
        "x-ratelimit-remaining-requests": "-1"
      },
      NOW
    )
    expect(limits).toEqual([{ metric: "requests", limit: 8 }])
  })
})

describe("Anthropic headers", () => {
  const { anthropic } = Provider.providers

  it("reads every metric with RFC 3339 resets, token remainders rounded to thousands", () => {
    const limits = anthropic.parseHeaders(
      {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-11-08T12:00:01Z",
        "anthropic-ratelimit-tokens-limit": "38000",
        "anthropic-ratelimit-tokens-remaining": "37000",
        "anthropic-ratelimit-tokens-reset": "2025-11-08T12:00:02Z",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "30000",
        "anthropic-ratelimit-input-tokens-reset": "2025-11-08T12:00:00Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7000",
        "anthropic-ratelimit-output-tokens-reset": "2025-11-08T12:00:07.5Z",
        "retry-after": "7"
      },
      NOW
    )
    expect(limits).toEqual([
      // Whole-second resets are a second coarse; the fractional one is not.
      { metric: "requests", window: "1 minute", limit: 50, remaining: 49, resetAt: NOW + 1_000, resetPrecision: 1000 },
      { metric: "tokens", window: "1 minute", limit: 38_000, remaining: 37_000, resetAt: NOW + 2_000, resetPrecision: 1000, precision: 1000 },
      { metric: "input_tokens", window: "1 minute", limit: 30_000, remaining: 30_000, resetAt: NOW, resetPrecision: 1000, precision: 1000 },
      { metric: "output_tokens", window: "1 minute", limit: 8_000, remaining: 7_000, resetAt: NOW + 7_500, precision: 1000 }
    ])
  })

  it("reads Priority Tier headers and skips malformed resets", () => {
    const limits = anthropic.parseHeaders(
      {
        "anthropic-priority-input-tokens-limit": "100000",
        "anthropic-priority-input-tokens-remaining": "99000",
        "anthropic-priority-input-tokens-reset": "in a minute",
        "anthropic-ratelimit-unknown-thing-limit": "5"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "priority_input_tokens", window: "1 minute", limit: 100_000, remaining: 99_000, precision: 1000 }
    ])
  })
})

describe("OpenAI-compatible headers", () => {
  it("Groq: requests are per day, tokens per minute (2m59.56s, 7.66s)", () => {
    const limits = Provider.providers.groq.parseHeaders(
      {
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-remaining-tokens": "5997",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-reset-tokens": "7.66s"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "requests", window: "1 day", limit: 14_400, remaining: 14_370, resetAt: NOW + 179_560 },
      { metric: "tokens", window: "1 minute", limit: 6_000, remaining: 5_997, resetAt: NOW + 7_660 }
    ])
  })

  it("Together: requests and tokens per second, plus the dynamic rate", () => {
    const limits = Provider.providers.together.parseHeaders(
      {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "9",
        "x-ratelimit-reset": "1",
        "x-tokenlimit-limit": "2000",
        "x-tokenlimit-remaining": "1500",
        "x-ratelimit-limit-dynamic": "8"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "requests", window: "1 second", limit: 10, remaining: 9, resetAt: NOW + 1_000 },
      { metric: "tokens", window: "1 second", limit: 2_000, remaining: 1_500 },
      { metric: "dynamic_requests", window: "1 second", limit: 8 }
    ])
  })

  it("Mistral: the observed minute limits (5000000, 4999911, 720, 717) and the query cost 52", () => {
    const limits = Provider.providers.mistral.parseHeaders(
      {
        "x-ratelimit-limit-tokens-minute": "5000000",
        "x-ratelimit-remaining-tokens-minute": "4999911",
        "x-ratelimit-tokens-query-cost": "52",
        "x-ratelimit-limit-req-minute": "720",
        "x-ratelimit-remaining-req-minute": "717"
      },
      NOW
    )
    expect(limits).toEqual([
      { metric: "tokens", window: "1 minute", limit: 5_000_000, remaining: 4_999_911, cost: 52 },
      { metric: "requests", window: "1 minute", limit: 720, remaining: 717 }
    ])
  })

  it("OpenRouter: X-RateLimit-* with epoch-millisecond, epoch-second and relative resets", () => {
    const { openrouter } = Provider.providers
    const reset = NOW + 30_000
    expect(openrouter.parseHeaders({ "X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": String(reset) }, NOW))
      .toEqual([{ metric: "requests", limit: 20, remaining: 0, resetAt: reset }])
    expect(openrouter.parseHeaders({ "X-RateLimit-Reset": String(reset / 1000) }, NOW)).toEqual([{ metric: "requests", resetAt: reset }])
    expect(openrouter.parseHeaders({ "X-RateLimit-Reset": "30" }, NOW)).toEqual([{ metric: "requests", resetAt: reset }])
    expect(openrouter.parseHeaders({ "X-RateLimit-Limit": "lots" }, NOW)).toEqual([])
  })

  it("Bedrock, Gemini, Vertex and DeepSeek send none", () => {
    const headers = { "x-ratelimit-limit-requests": "60", "retry-after": "3" }
    for (const name of ["bedrock", "gemini", "vertex", "deepseek"] as const) {
      expect(Provider.providers[name].parseHeaders(headers, NOW)).toEqual([])
    }
  })
})

describe("Venice headers", () => {
  const { venice } = Provider.providers
  const epoch = NOW / 1000

  it("OpenAI names; requests reset at a Unix timestamp, tokens in seconds from now and per minute", () => {
    expect(
      venice.parseHeaders({
        "x-ratelimit-limit-requests": "75",
        "x-ratelimit-remaining-requests": "74",
        "x-ratelimit-reset-requests": String(epoch + 60),
        "x-ratelimit-limit-tokens": "750000",
        "x-ratelimit-remaining-tokens": "749000",
        "x-ratelimit-reset-tokens": "2"
      }, NOW)
    ).toEqual([
      { metric: "requests", limit: 75, remaining: 74, resetAt: NOW + 60_000 },
      { metric: "tokens", window: "1 minute", limit: 750_000, remaining: 749_000, resetAt: NOW + 2_000 }
    ])
  })

  it("an older copy's durations are read too", () => {
    expect(find(venice.parseHeaders({ "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "1m30s" }, NOW), "requests"))
      .toEqual({ metric: "requests", remaining: 1, resetAt: NOW + 90_000 })
  })
})

import { describe, expect, it } from "@effect/vitest"
import * as Provider from "../../src/Provider.js"

const NOW = Date.UTC(2025, 10, 8, 12, 0, 0)
const { anthropic, bedrock, deepseek, gemini, groq, mistral, openai, openrouter, together, venice, vertex } = Provider.providers
const azure = Provider.providers["azure-openai"]

// Bodies as quoted in the reference, as raw response text.
const OPENAI_429 =
  `{"error":{"message":"Rate limit reached for gpt-4o in organization org-… on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
const OPENAI_TOO_LARGE =
  `{"error":{"message":"Request too large for gpt-4o … (TPM): Limit 30000, Requested 31538. The input or output tokens must be reduced…","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
const AZURE_429 = `{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 2 seconds."}}`
const AZURE_S0 = {
  error: {
    code: "429",
    message:
      "Requests to the ChatCompletions_Create Operation … have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds…"
  }
}
const AZURE_HIGH_DEMAND = {
  error: {
    code: "429",
    message: "The system is currently experiencing high demand and cannot process your request… Please retry after 20 seconds…"
  }
}
const ANTHROPIC_429 =
  `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (<uuid>) of 40,000 input tokens per minute. … reduce the prompt length or the maximum tokens requested…"},"request_id":"req_…"}`
const ANTHROPIC_529 = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011C…"}`
const ANTHROPIC_413 = { type: "error", error: { type: "request_too_large", message: "Request exceeds the maximum allowed number of bytes." } }
const GEMINI_429 =
  `{"error":{"code":429,"message":"You exceeded your current quota…","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"}}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47s"}]}}`
const GEMINI_429_DAILY = GEMINI_429.replace("GenerateRequestsPerMinutePerProjectPerModel", "GenerateRequestsPerDayPerProjectPerModel")
const GEMINI_503 = `{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}`
const BEDROCK_HEADERS = { "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/" }
const BEDROCK_TOKENS = `{"message":"Too many tokens, please wait before trying again."}`
const GROQ_TOO_LARGE = {
  error: {
    message:
      "Request too large for model `llama-3.1-8b-instant` in organization `…` service tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 6294…",
    type: "tokens",
    code: "rate_limit_exceeded"
  }
}
const MISTRAL_429 = `{"message":"Requests rate limit exceeded"}`
const OPENROUTER_429 = `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`

describe("retry delay precedence", () => {
  it("retry-after-ms (float ms) beats retry-after", () => {
    expect(openai.retryAfter(429, { "retry-after-ms": "644.2", "retry-after": "1" }, OPENAI_429, NOW)).toEqual({
      kind: "rate-limited",
      retry: true,
      delayMs: 645,
      source: "retry-after-ms",
      message: expect.stringContaining("Please try again in 644ms")
    })
  })

  it("retry-after-ms of 0 is a delay of 0", () => {
    expect(openai.retryAfter(429, { "retry-after-ms": "0", "retry-after": "2" }, "", NOW)).toMatchObject({
      delayMs: 0,
      source: "retry-after-ms"
    })
  })

  it("retry-after as float seconds beats body hints", () => {
    expect(openai.retryAfter(429, { "retry-after": "1.5" }, OPENAI_429, NOW)).toMatchObject({ delayMs: 1_500, source: "retry-after" })
  })

  it("retry-after as an HTTP date", () => {
    expect(anthropic.retryAfter(429, { "Retry-After": "Sat, 08 Nov 2025 12:00:30 GMT" }, ANTHROPIC_429, NOW)).toMatchObject({
      kind: "rate-limited",
      delayMs: 30_000,
      source: "retry-after"
    })
  })

  it("ignores negative, garbage and past values and falls through to the body", () => {
    expect(openai.retryAfter(429, { "retry-after-ms": "-5", "retry-after": "-1" }, OPENAI_429, NOW)).toMatchObject({
      delayMs: 644,
      source: "message"
    })
    expect(openai.retryAfter(429, { "retry-after-ms": "soon", "retry-after": "later" }, OPENAI_429, NOW)).toMatchObject({
      delayMs: 644,
      source: "message"
    })
    expect(openai.retryAfter(429, { "retry-after": "Sat, 08 Nov 2025 11:59:00 GMT" }, OPENAI_429, NOW)).toMatchObject({
      delayMs: 644,
      source: "message"
    })
    expect(openai.retryAfter(429, { "retry-after": "NaN" }, "{}", NOW)).toEqual({ kind: "rate-limited", retry: true })
  })

  it("x-should-retry: false means do not retry, whatever the delay headers say", () => {
    expect(openai.retryAfter(429, { "x-should-retry": "false", "retry-after-ms": "100" }, OPENAI_429, NOW)).toEqual({
      kind: "rate-limited",
      retry: false,
      message: expect.any(String)
    })
  })

  it("x-should-retry: true makes any status retryable", () => {
    expect(openai.retryAfter(400, { "x-should-retry": "true" }, "", NOW)).toEqual({ kind: "other", retry: true })
    expect(openai.retryAfter(400, {}, "", NOW)).toEqual({ kind: "other", retry: false })
    expect(openai.retryAfter(500, {}, "", NOW)).toEqual({ kind: "other", retry: true })
  })

  it("keeps delays longer than the SDKs' 60 s cap", () => {
    expect(openai.retryAfter(429, { "retry-after": "120" }, "", NOW)).toMatchObject({ delayMs: 120_000 })
  })
})

describe("429, 529 and 503 bodies", () => {
  it("OpenAI 429: rate-limited, 644ms from the message", () => {
    expect(openai.retryAfter(429, {}, OPENAI_429, NOW)).toMatchObject({ kind: "rate-limited", retry: true, delayMs: 644, source: "message" })
  })

  it("OpenAI messages with seconds and compound durations", () => {
    const body = (text: string) => ({ error: { message: `Rate limit reached … Please try again in ${text}. Visit …`, type: "requests" } })
    expect(openai.retryAfter(429, {}, body("1.5s"), NOW).delayMs).toBe(1_500)
    expect(openai.retryAfter(429, {}, body("7m12s"), NOW).delayMs).toBe(432_000)
    expect(openai.retryAfter(429, {}, body("20s"), NOW).delayMs).toBe(20_000)
  })

  it("OpenAI and Groq 'Request too large': too-large, no retry", () => {
    expect(openai.retryAfter(429, { "retry-after": "1" }, OPENAI_TOO_LARGE, NOW)).toMatchObject({ kind: "too-large", retry: false })
    expect(openai.retryAfter(429, {}, OPENAI_TOO_LARGE, NOW).delayMs).toBeUndefined()
    expect(groq.retryAfter(413, {}, GROQ_TOO_LARGE, NOW)).toMatchObject({ kind: "too-large", retry: false })
  })

  it("OpenAI per-day quota: daily", () => {
    const body = { error: { message: "Rate limit reached for gpt-4o on tokens per day (TPD): Limit 90000, Used 89000. Please try again in 7m12s.", type: "tokens" } }
    // Not retried, but the delay stays: it is when the quota may be back.
    expect(openai.retryAfter(429, {}, body, NOW)).toMatchObject({ kind: "daily", retry: false, delayMs: 432_000 })
    expect(openai.retryAfter(429, { "x-should-retry": "true" }, body, NOW)).toMatchObject({ kind: "daily", retry: true })
  })

  it("Azure: 'Try again in 2 seconds', 'retry after 86400 seconds', and 'high demand' as an overload", () => {
    expect(azure.retryAfter(429, {}, AZURE_429, NOW)).toMatchObject({ kind: "rate-limited", delayMs: 2_000, source: "message" })
    expect(azure.retryAfter(429, {}, AZURE_S0, NOW)).toMatchObject({ kind: "rate-limited", delayMs: 86_400_000 })
    expect(azure.retryAfter(429, {}, AZURE_HIGH_DEMAND, NOW)).toMatchObject({ kind: "overloaded", retry: true, delayMs: 20_000 })
    expect(azure.retryAfter(429, { "retry-after-ms": "1500", "retry-after": "2" }, AZURE_429, NOW)).toMatchObject({
      delayMs: 1_500,
      source: "retry-after-ms"
    })
  })

  it("Anthropic 429 and 529 and 413", () => {
    expect(anthropic.retryAfter(429, { "retry-after": "7" }, ANTHROPIC_429, NOW)).toMatchObject({
      kind: "rate-limited",
      retry: true,
      delayMs: 7_000
    })
    expect(anthropic.retryAfter(529, {}, ANTHROPIC_529, NOW)).toEqual({ kind: "overloaded", retry: true, message: "Overloaded" })
    expect(anthropic.retryAfter(413, {}, ANTHROPIC_413, NOW)).toMatchObject({ kind: "too-large", retry: false })
  })

  it("Anthropic errors mid-stream after a 200", () => {
    const event = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
    expect(anthropic.retryAfter(200, {}, event, NOW)).toMatchObject({ kind: "overloaded", retry: true })
  })

  it("Gemini 429 with RetryInfo 47s; a per-day quota id is daily; the 503 is an overload", () => {
    expect(gemini.retryAfter(429, {}, GEMINI_429, NOW)).toMatchObject({ kind: "rate-limited", retry: true, delayMs: 47_000, source: "retry-info" })
    // 47 s later the daily quota is still spent: it resets at midnight Pacific time.
    expect(gemini.retryAfter(429, {}, GEMINI_429_DAILY, NOW)).toMatchObject({ kind: "daily", retry: false, delayMs: 47_000 })
    expect(gemini.retryAfter(503, {}, GEMINI_503, NOW)).toEqual({
      kind: "overloaded",
      retry: true,
      message: "The model is overloaded. Please try again later."
    })
    // Clients that wrap the error in a list.
    expect(gemini.retryAfter(429, {}, `[${GEMINI_429}]`, NOW)).toMatchObject({ delayMs: 47_000 })
  })

  it("Vertex AI 429 messages", () => {
    expect(vertex.retryAfter(429, {}, { error: { code: 429, message: "Resource exhausted, please try again later.", status: "RESOURCE_EXHAUSTED" } }, NOW))
      .toMatchObject({ kind: "rate-limited", retry: true })
    expect(vertex.retryAfter(429, {}, { error: { code: 429, message: "Too many requests. Exceeded the Provisioned Throughput." } }, NOW))
      .toMatchObject({ kind: "rate-limited" })
  })

  it("Bedrock throttles: tokens, requests, tokens per day; 503 and ModelNotReady", () => {
    expect(bedrock.retryAfter(429, BEDROCK_HEADERS, BEDROCK_TOKENS, NOW)).toEqual({
      kind: "rate-limited",
      retry: true,
      message: "Too many tokens, please wait before trying again."
    })
    expect(bedrock.retryAfter(429, BEDROCK_HEADERS, `{"message":"Too many requests, please wait before trying again."}`, NOW))
      .toMatchObject({ kind: "rate-limited" })
    expect(bedrock.retryAfter(429, BEDROCK_HEADERS, `{"message":"Too many tokens per day, please wait before trying again."}`, NOW))
      .toMatchObject({ kind: "daily", retry: false })
    expect(bedrock.retryAfter(503, { "x-amzn-ErrorType": "ServiceUnavailableException:" }, `{"message":"Service unavailable"}`, NOW))
      .toMatchObject({ kind: "overloaded" })
    expect(bedrock.retryAfter(429, { "x-amzn-ErrorType": "ModelNotReadyException:" }, `{"message":"Model is not ready"}`, NOW))
      .toMatchObject({ kind: "overloaded", retry: true })
  })

  it("Mistral 429", () => {
    expect(mistral.retryAfter(429, {}, MISTRAL_429, NOW)).toEqual({ kind: "rate-limited", retry: true, message: "Requests rate limit exceeded" })
  })

  it("OpenRouter 429, its mid-stream error chunk, and the in-flight budget 402", () => {
    expect(openrouter.retryAfter(429, { "Retry-After": "3" }, OPENROUTER_429, NOW)).toMatchObject({ kind: "rate-limited", delayMs: 3_000 })
    const chunk = { id: "gen-1", choices: [{ finish_reason: "error" }], error: { code: 429, message: "Rate limit exceeded" } }
    expect(openrouter.retryAfter(200, {}, chunk, NOW)).toMatchObject({ kind: "rate-limited", retry: true })
    expect(openrouter.retryAfter(402, { "Retry-After": "5" }, { error: { code: 402, message: "…", metadata: { reason: "in_flight_budget_exhausted" } } }, NOW))
      .toMatchObject({ kind: "rate-limited", retry: true, delayMs: 5_000 })
    expect(openrouter.retryAfter(402, {}, { error: { code: 402, message: "Insufficient credits" } }, NOW)).toMatchObject({ kind: "billing", retry: false })
  })

  it("Together: 503 is an overload; 429 dynamic limits use x-ratelimit-reset", () => {
    expect(together.retryAfter(503, {}, { error: { message: "Service unavailable" } }, NOW)).toMatchObject({ kind: "overloaded" })
    expect(together.retryAfter(429, { "x-ratelimit-reset": "2" }, { error: { message: "rate limited", type: "dynamic_request_limited" } }, NOW))
      .toMatchObject({ kind: "rate-limited", delayMs: 2_000, source: "header" })
  })

  it("DeepSeek 429, 503 and 402", () => {
    expect(deepseek.retryAfter(429, {}, { error: { message: "Rate Limit Reached" } }, NOW)).toMatchObject({ kind: "rate-limited" })
    expect(deepseek.retryAfter(503, {}, { error: { message: "Server Overloaded" } }, NOW)).toMatchObject({ kind: "overloaded" })
    expect(deepseek.retryAfter(402, {}, { error: { message: "Insufficient Balance" } }, NOW)).toMatchObject({ kind: "billing", retry: false })
  })
})

// OpenAI's billing refusal is a 429 like its rate limits; only its type tells them apart.
const OPENAI_INSUFFICIENT_QUOTA =
  `{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`

describe("billing refusals are not retried", () => {
  it("OpenAI insufficient_quota: a 429 that is billing, with no delay even when retry headers are sent", () => {
    expect(openai.retryAfter(429, {}, OPENAI_INSUFFICIENT_QUOTA, NOW)).toEqual({
      kind: "billing",
      retry: false,
      message: expect.stringContaining("You exceeded your current quota")
    })
    expect(openai.retryAfter(429, { "retry-after": "1", "retry-after-ms": "20" }, OPENAI_INSUFFICIENT_QUOTA, NOW)).toEqual({
      kind: "billing",
      retry: false,
      message: expect.any(String)
    })
    expect(azure.retryAfter(429, {}, OPENAI_INSUFFICIENT_QUOTA, NOW)).toMatchObject({ kind: "billing", retry: false })
    // Only the type says billing; a plain rate-limit 429 is still retried.
    expect(openai.retryAfter(429, {}, OPENAI_429, NOW)).toMatchObject({ kind: "rate-limited", retry: true })
  })

  it("the same wording from Gemini is a per-minute quota, not billing", () => {
    expect(gemini.retryAfter(429, {}, GEMINI_429, NOW)).toMatchObject({ kind: "rate-limited", retry: true })
  })

  it("Anthropic billing_error and low credit balance; 402s of the OpenAI-compatible providers", () => {
    const billing = { type: "error", error: { type: "billing_error", message: "Your credit balance is too low to access the Anthropic API." } }
    expect(anthropic.retryAfter(402, {}, billing, NOW)).toMatchObject({ kind: "billing", retry: false })
    const lowBalance = { type: "error", error: { type: "invalid_request_error", message: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits." } }
    expect(anthropic.retryAfter(400, {}, lowBalance, NOW)).toMatchObject({ kind: "billing", retry: false })
    expect(groq.retryAfter(402, { "retry-after": "5" }, { error: { message: "Payment required" } }, NOW)).toEqual({
      kind: "billing",
      retry: false,
      message: "Payment required"
    })
  })

  it("x-should-retry: true still wins, as in the SDKs", () => {
    expect(openai.retryAfter(429, { "x-should-retry": "true", "retry-after": "2" }, OPENAI_INSUFFICIENT_QUOTA, NOW)).toMatchObject({
      kind: "billing",
      retry: true,
      delayMs: 2_000
    })
  })
})

describe("Venice", () => {
  const epoch = NOW / 1000

  it("a 429 waits for the reset of the metric reported exhausted", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": String(epoch + 12),
      "x-ratelimit-remaining-tokens": "5000",
      "x-ratelimit-reset-tokens": "40"
    }
    expect(venice.retryAfter(429, headers, { error: "Rate limit exceeded" }, NOW)).toEqual({
      kind: "rate-limited",
      retry: true,
      delayMs: 12_000,
      source: "header",
      message: "Rate limit exceeded"
    })
    // retry-after, when sent, comes first.
    expect(venice.retryAfter(429, { ...headers, "retry-after": "3" }, "", NOW)).toMatchObject({ delayMs: 3_000, source: "retry-after" })
  })

  it("the block after repeated failures: 30 s from its message", () => {
    const body = {
      error: "Too many failed attempts (> 20) resulting in a non-success status code. Please wait 30s and try again. See https://docs.venice.ai/api-reference/rate-limiting for more information."
    }
    expect(venice.retryAfter(429, {}, body, NOW)).toMatchObject({ kind: "rate-limited", retry: true, delayMs: 30_000, source: "message" })
  })

  it("a 402 is billing: an empty balance or a key's spending limit", () => {
    const body = { error: "Insufficient USD or Diem balance to complete request. Visit https://venice.ai/settings/api to add credits." }
    expect(venice.retryAfter(402, {}, body, NOW)).toMatchObject({ kind: "billing", retry: false })
  })
})

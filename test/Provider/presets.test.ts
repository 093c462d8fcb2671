import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Provider from "../../src/Provider.js"
import { MemoryBackendLive, RateLimited } from "../../src/index.js"

const { anthropic, bedrock, gemini, mistral, openai, openrouter, vertex } = Provider.providers
const azure = Provider.providers["azure-openai"]

const presetError = (options: Parameters<typeof Provider.presetQuotas>[0]) =>
  Either.getOrElse(Either.flip(Provider.presetQuotas(options)), () => {
    throw new Error("expected UnknownPreset")
  })

describe("family", () => {
  it("OpenAI: dated snapshots share their family's bucket", () => {
    expect(openai.family("gpt-4o-2024-08-06")).toBe("gpt-4o")
    expect(openai.family("gpt-4o-mini-2024-07-18")).toBe("gpt-4o-mini")
    expect(openai.family("gpt-4.1-2025-04-14")).toBe("gpt-4.1")
    expect(openai.family("gpt-3.5-turbo-0125")).toBe("gpt-3.5-turbo")
    expect(openai.family("o3-2025-04-16")).toBe("o3")
    expect(openai.family("ft:gpt-4o-mini-2024-07-18:acme::abc123")).toBe("gpt-4o-mini")
    expect(openai.family("gpt-4o")).toBe("gpt-4o")
    expect(azure.family("gpt-4o-2024-11-20")).toBe("gpt-4o")
  })

  it("Anthropic: Opus 4.x and Sonnet 4.x each share one pool; others keep their name", () => {
    expect(anthropic.family("claude-sonnet-4-5-20250929")).toBe("claude-sonnet-4.x")
    expect(anthropic.family("claude-sonnet-4-20250514")).toBe("claude-sonnet-4.x")
    expect(anthropic.family("claude-sonnet-4-5")).toBe("claude-sonnet-4.x")
    expect(anthropic.family("claude-opus-4-1-20250805")).toBe("claude-opus-4.x")
    expect(anthropic.family("claude-opus-4-0")).toBe("claude-opus-4.x")
    expect(anthropic.family("claude-haiku-4-5-20251001")).toBe("claude-haiku-4-5")
    expect(anthropic.family("claude-3-7-sonnet-latest")).toBe("claude-3-7-sonnet")
    expect(anthropic.family("claude-3-5-haiku-20241022")).toBe("claude-3-5-haiku")
  })

  it("Bedrock: ids lose ARN, version and date; cross-Region prefixes stay", () => {
    expect(bedrock.family("anthropic.claude-sonnet-4-5-20250929-v1:0")).toBe("anthropic.claude-sonnet-4-5")
    expect(bedrock.family("us.anthropic.claude-sonnet-4-20250514-v1:0")).toBe("us.anthropic.claude-sonnet-4")
    expect(bedrock.family("anthropic.claude-3-haiku-20240307-v1:0:200k")).toBe("anthropic.claude-3-haiku")
    expect(bedrock.family("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0")).toBe(
      "anthropic.claude-3-5-sonnet"
    )
    expect(bedrock.family("meta.llama3-1-70b-instruct-v1:0")).toBe("meta.llama3-1-70b-instruct")
  })

  it("Gemini and Vertex: versions, previews' dates and resource paths drop", () => {
    expect(gemini.family("gemini-2.0-flash-001")).toBe("gemini-2.0-flash")
    expect(gemini.family("models/gemini-2.0-flash")).toBe("gemini-2.0-flash")
    expect(gemini.family("gemini-2.5-flash-preview-05-20")).toBe("gemini-2.5-flash-preview")
    expect(gemini.family("gemini-2.5-pro-preview-03-25")).toBe("gemini-2.5-pro-preview")
    expect(gemini.family("gemini-1.5-flash-latest")).toBe("gemini-1.5-flash")
    expect(vertex.family("projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001")).toBe("gemini-2.0-flash")
  })

  it("Mistral drops -latest and YYMM; OpenRouter keeps :free", () => {
    expect(mistral.family("mistral-large-2411")).toBe("mistral-large")
    expect(mistral.family("mistral-small-latest")).toBe("mistral-small")
    expect(openrouter.family("meta-llama/llama-3.3-70b-instruct:free")).toBe("meta-llama/llama-3.3-70b-instruct:free")
  })

  it("a user map overrides, by the name as given or by its family", () => {
    expect(openai.family("my-deployment", { "my-deployment": "gpt-4o" })).toBe("gpt-4o")
    expect(openai.family("gpt-4o-2024-08-06", { "gpt-4o": "shared-4o" })).toBe("shared-4o")
    expect(anthropic.family("claude-sonnet-4-5-20250929", { "claude-sonnet-4-5-20250929": "sonnet-45-only" })).toBe("sonnet-45-only")
  })
})

describe("burndown", () => {
  it("is 5 for the Claude 4 generation on Bedrock, 1 otherwise", () => {
    for (const family of Provider.Bedrock.BURNDOWN_MODELS) expect(Provider.Bedrock.burndownOf(`${family}-20250101-v1:0`)).toBe(5)
    expect(Provider.Bedrock.burndownOf("global.anthropic.claude-haiku-4-5-20251001-v1:0")).toBe(5)
    expect(Provider.Bedrock.burndownOf("anthropic.claude-3-7-sonnet-20250219-v1:0")).toBe(1)
    expect(Provider.Bedrock.burndownOf("amazon.nova-pro-v1:0")).toBe(1)
    expect(Provider.Bedrock.burndownOf(undefined)).toBe(1)
  })
})

describe("charging rules", () => {
  it("name the metrics charged and whether output is refunded", () => {
    expect(openai.charging).toMatchObject({ metrics: ["requests", "tokens"], refunds: false })
    expect(azure.charging).toMatchObject({ metrics: ["requests", "tokens"], refunds: false })
    expect(anthropic.charging).toMatchObject({ metrics: ["requests", "input_tokens", "output_tokens"], refunds: true })
    expect(bedrock.charging).toMatchObject({ metrics: ["requests", "tokens"], refunds: true })
    expect(gemini.charging).toMatchObject({ metrics: ["requests", "tokens"], refunds: true })
    expect(openrouter.charging).toMatchObject({ metrics: ["requests"] })
  })

  it("Azure adds a requests quota of limit / 6 per 10 seconds", () => {
    expect(azure.quotas({ rpm: 2_700, tpm: 450_000 })).toEqual([
      { metric: "requests", limit: 2_700, window: "1 minute" },
      { metric: "requests", limit: 450, window: "10 seconds" },
      { metric: "tokens", limit: 450_000, window: "1 minute", refunds: false, algorithm: "sliding-window" }
    ])
    expect(Provider.AzureOpenAI.smoothingQuota(600, "1 second")).toEqual({ metric: "requests", limit: 10, window: "1 second" })
    expect(Provider.AzureOpenAI.smoothingQuota(3)).toEqual({ metric: "requests", limit: 1, window: "10 seconds" })
  })
})

describe("presets", () => {
  it("OpenAI free tier gpt-3.5-turbo: 3 RPM, 200 RPD (fixed-window), 40,000 TPM without refunds", () => {
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "openai", tier: "free", model: "gpt-3.5-turbo-0125" }))).toEqual([
      { metric: "requests", limit: 3, window: "1 minute" },
      { metric: "requests", limit: 200, window: "1 day", algorithm: "fixed-window" },
      { metric: "tokens", limit: 40_000, window: "1 minute", refunds: false }
    ])
    expect(Either.getOrThrow(Provider.preset({ provider: "openai", tier: "tier-1", model: "gpt-4o-2024-08-06" }))).toMatchObject({
      tpm: 30_000,
      source: "OA-429",
      uncertain: true
    })
  })

  it("Azure Global Standard defaults", () => {
    expect(Either.getOrThrow(Provider.preset({ provider: "azure-openai", model: "gpt-4o-mini" }))).toMatchObject({
      tier: "global-standard",
      rpm: 12_000,
      tpm: 2_000_000,
      source: "AZ-limits",
      date: "2025-07-11"
    })
  })

  it("Anthropic Tier 1-4 for Sonnet/Opus 4.x and Haiku 4.5", () => {
    const quotas = (tier: string, model: string) => Either.getOrThrow(Provider.presetQuotas({ provider: "anthropic", tier, model }))
    expect(quotas("tier-1", "claude-sonnet-4-5-20250929")).toEqual([
      { metric: "requests", limit: 50, window: "1 minute" },
      { metric: "input_tokens", limit: 30_000, window: "1 minute", refunds: true },
      { metric: "output_tokens", limit: 8_000, window: "1 minute", refunds: true }
    ])
    expect(quotas("tier-4", "claude-opus-4-1").map((q) => q.limit)).toEqual([4_000, 2_000_000, 400_000])
    expect(quotas("tier-1", "claude-haiku-4-5-20251001").map((q) => q.limit)).toEqual([50, 50_000, 10_000])
    expect(quotas("tier-4", "claude-haiku-4-5").map((q) => q.limit)).toEqual([4_000, 4_000_000, 800_000])
    expect(Either.getOrThrow(Provider.preset({ provider: "anthropic", model: "claude-sonnet-4-5" }))).toMatchObject({
      tier: "tier-1",
      source: "AN-25",
      date: "2025-11-08"
    })
  })

  it("Gemini free and tier 1; Groq free; Mistral and OpenRouter wildcards", () => {
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "gemini", tier: "free", model: "gemini-2.0-flash-001" }))).toEqual([
      { metric: "requests", limit: 15, window: "1 minute" },
      { metric: "requests", limit: 1_500, window: "1 day", algorithm: "fixed-window" },
      { metric: "tokens", limit: 1_000_000, window: "1 minute", refunds: true }
    ])
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "gemini", tier: "tier-1", model: "gemini-2.5-pro-preview-05-06" })).length).toBe(3)
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "groq", model: "llama-3.3-70b-versatile" }))).toEqual([
      { metric: "requests", limit: 30, window: "1 minute" },
      { metric: "requests", limit: 1_000, window: "1 day", algorithm: "fixed-window" },
      { metric: "tokens", limit: 12_000, window: "1 minute", refunds: false },
      { metric: "tokens", limit: 100_000, window: "1 day", algorithm: "fixed-window", refunds: false }
    ])
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "mistral", model: "mistral-large-latest" }))).toEqual([
      { metric: "requests", limit: 1, window: "1 second" },
      { metric: "tokens", limit: 500_000, window: "1 minute", refunds: false }
    ])
    expect(Either.getOrThrow(Provider.presetQuotas({ provider: "openrouter", tier: "free-10-credits", model: "deepseek/deepseek-r1:free" }))).toEqual([
      { metric: "requests", limit: 20, window: "1 minute" },
      { metric: "requests", limit: 1_000, window: "1 day", algorithm: "fixed-window" }
    ])
  })

  it("every preset names a known source and a date", () => {
    for (const table of Object.values(Provider.Presets.presets)) {
      for (const models of Object.values(table?.tiers ?? {})) {
        for (const preset of Object.values(models)) {
          expect(Provider.Presets.sources[preset.source]).toBeDefined()
          expect(preset.date).toMatch(/^\d{4}(-\d{2}-\d{2})?$|^undated$/)
        }
      }
    }
  })

  it("fails with UnknownPreset listing the known providers, tiers or models", () => {
    const tier = presetError({ provider: "anthropic", tier: "tier-9", model: "claude-sonnet-4-5" })
    expect(tier).toMatchObject({ _tag: "UnknownPreset", level: "tier", known: ["tier-1", "tier-2", "tier-3", "tier-4"] })
    expect(tier.message).toBe(`no tier "tier-9" in the anthropic presets (known tiers: tier-1, tier-2, tier-3, tier-4)`)

    const model = presetError({ provider: "anthropic", tier: "tier-2", model: "claude-haiku-4-5" })
    expect(model).toMatchObject({ level: "model", known: ["claude-sonnet-4.x", "claude-opus-4.x"] })
    expect(model.message).toBe(`no anthropic tier-2 preset for model "claude-haiku-4-5" (known models: claude-sonnet-4.x, claude-opus-4.x)`)

    const provider = presetError({ provider: "bedrock", model: "anthropic.claude-sonnet-4-20250514-v1:0" })
    expect(provider).toMatchObject({ level: "provider" })
    expect(provider.known).toEqual(["openai", "azure-openai", "anthropic", "gemini", "groq", "mistral", "openrouter"])
    expect(presetError({ provider: "nope", model: "x" }).level).toBe("provider")
  })

  it("the registry: get by name, UnknownProvider otherwise", () => {
    expect(Provider.names).toHaveLength(12)
    expect(Either.getOrThrow(Provider.get("venice")).name).toBe("venice")
    expect(Either.getOrThrow(Provider.get("mistral")).name).toBe("mistral")
    const error = Either.getOrElse(Either.flip(Provider.get("openia")), () => {
      throw new Error("expected UnknownProvider")
    })
    expect(error.message).toContain(`unknown provider "openia" (known: openai, azure-openai,`)
  })

  it("preset quotas configure a limiter that accepts the provider's charges", async () => {
    const quotas = Either.getOrThrow(Provider.presetQuotas({ provider: "anthropic", tier: "tier-1", model: "claude-sonnet-4-5" }))
    const request = { model: "claude-sonnet-4-5", max_tokens: 256, messages: [{ role: "user", content: "Hello, Claude" }] }
    const program = Effect.gen(function*() {
      const usage = yield* anthropic.chargeOf(request)
      const answer = yield* RateLimited.submit(
        { bucket: "sonnet", usage },
        Effect.succeed({ type: "message", usage: { input_tokens: 9, output_tokens: 20 } }),
        { actualUsage: (response) => anthropic.usageOf(response) ?? {} }
      )
      const status = yield* RateLimited.status("sonnet")
      return { answer, status }
    })
    const result = await Effect.runPromise(
      program.pipe(
        Effect.provide(RateLimited.layer({ buckets: { sonnet: { quotas } } })),
        Effect.provide(MemoryBackendLive)
      )
    )
    expect(result.answer.type).toBe("message")
  })
})

/**
 * Published default limits per provider, tier and model family, each with the key of its source and the date
 * of that source. Limits change often: treat these as starting points and prefer what the provider's console
 * (or its rate-limit headers) says for your account.
 *
 * @since 0.1.0
 */
import type { Limits, ProviderName } from "../Provider.js"

/**
 * Where a preset comes from.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Presets.sources["AN-25"].date // "2025-11-08"
 * ```
 * @since 0.1.0
 */
export interface Source {
  readonly reference: string
  /** The date of the copy the numbers were read from; `"undated"` where the copy carries none. */
  readonly date: string
}

/**
 * The sources of the presets, by key.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Object.keys(Provider.Presets.sources) // ["OA-doc25", "OA-429", "AZ-limits", ...]
 * ```
 * @since 0.1.0
 */
export const sources = {
  "OA-doc25": {
    reference: "platform.openai.com/docs/guides/rate-limits, copy at spybara.com/openai/api/history (2026-06-24..26)",
    date: "2026-06-24"
  },
  "OA-429": {
    reference: "429 messages quoted in openai/codex#88, BuilderIO/micro-agent#86, TheR1D/shell_gpt#653",
    date: "undated"
  },
  "AZ-limits": {
    reference: "MicrosoftDocs/azure-ai-docs articles/ai-foundry/openai/quotas-limits.md (ms.date 07/11/2025)",
    date: "2025-07-11"
  },
  "AN-25": {
    reference: "docs.anthropic.com rate limits, copy at patrickcarmichael/claude-docs 1437-rate-limits.md",
    date: "2025-11-08"
  },
  "GM-zh": { reference: "ai.google.dev/gemini-api/docs/quota?hl=zh-cn (2025 snapshot)", date: "2025" },
  "GQ-doc": { reference: "console.groq.com/docs/rate-limits", date: "undated" },
  "MI-free": { reference: "help.mistral.ai/en/articles/225174", date: "undated" },
  "OR-doc": { reference: "OpenRouterTeam/docs api_reference/limits.mdx", date: "undated" }
} as const satisfies Readonly<Record<string, Source>>

/**
 * The key of a source.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const key: Provider.Presets.SourceKey = "AZ-limits"
 * ```
 * @since 0.1.0
 */
export type SourceKey = keyof typeof sources

/**
 * The published limits of one model family in one tier.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const preset: Provider.Presets.Preset = { rpm: 50, itpm: 30_000, otpm: 8_000, source: "AN-25", date: "2025-11-08" }
 * ```
 * @since 0.1.0
 */
export interface Preset extends Limits {
  readonly source: SourceKey
  readonly date: string
  /** The source is indirect or the tier is inferred. */
  readonly uncertain?: boolean
  readonly note?: string
}

/**
 * A preset with the tier and family it was found under.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const found: Provider.Presets.ResolvedPreset = { tier: "free", family: "gemini-2.0-flash", rpm: 15, tpm: 1_000_000, rpd: 1_500, source: "GM-zh", date: "2025" }
 * ```
 * @since 0.1.0
 */
export interface ResolvedPreset extends Preset {
  readonly tier: string
  readonly family: string
}

/**
 * The presets of one provider: tiers from lowest to highest, each mapping model families to limits. A key
 * starting with `*` matches every family ending with the rest (`"*"` matches all, `"*:free"` OpenRouter's free
 * variants).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Object.keys(Provider.Presets.presets.anthropic!.tiers) // ["tier-1", "tier-2", "tier-3", "tier-4"]
 * ```
 * @since 0.1.0
 */
export interface ProviderPresets {
  readonly tiers: Readonly<Record<string, Readonly<Record<string, Preset>>>>
}

const an = (rpm: number, itpm: number, otpm: number): Preset => ({ rpm, itpm, otpm, source: "AN-25", date: "2025-11-08" })

/**
 * Every preset, by provider. Bedrock, Vertex AI, Together and DeepSeek publish no fixed defaults: Bedrock's are
 * per account and region (tokens per day default to tokens per minute × 1440), Vertex AI's Gemini 2.0+ use
 * Dynamic Shared Quota, Together's rate is dynamic and DeepSeek states no limits.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Presets.presets.groq!.tiers.free!["llama-3.1-8b-instant"] // { rpm: 30, rpd: 14400, tpm: 6000, tpd: 500000, ... }
 * ```
 * @since 0.1.0
 */
export const presets: { readonly [N in ProviderName]?: ProviderPresets } = {
  openai: {
    tiers: {
      free: {
        "gpt-3.5-turbo": { rpm: 3, rpd: 200, tpm: 40_000, source: "OA-doc25", date: "2026-06-24" },
        "text-embedding-3-small": { rpm: 3_000, tpm: 1_000_000, source: "OA-doc25", date: "2026-06-24" },
        "text-embedding-3-large": { rpm: 3_000, tpm: 1_000_000, source: "OA-doc25", date: "2026-06-24" },
        "dall-e-3": { ipm: 1, source: "OA-doc25", date: "2026-06-24" }
      },
      "tier-1": {
        "gpt-4o": {
          tpm: 30_000,
          source: "OA-429",
          date: "undated",
          uncertain: true,
          note: "\"Limit 30000\" in gpt-4o 429 messages, likely Tier 1; requests per minute not published there"
        }
      }
    }
  },
  "azure-openai": {
    tiers: {
      "global-standard": {
        "gpt-4o": { rpm: 2_700, tpm: 450_000, source: "AZ-limits", date: "2025-07-11" },
        "gpt-4o-mini": { rpm: 12_000, tpm: 2_000_000, source: "AZ-limits", date: "2025-07-11" },
        "gpt-4.1": { rpm: 1_000, tpm: 1_000_000, source: "AZ-limits", date: "2025-07-11" },
        o3: { rpm: 1_000, tpm: 1_000_000, source: "AZ-limits", date: "2025-07-11" }
      },
      "global-standard-enterprise": {
        "gpt-4o": { rpm: 180_000, tpm: 30_000_000, source: "AZ-limits", date: "2025-07-11" }
      }
    }
  },
  anthropic: {
    tiers: {
      "tier-1": {
        "claude-sonnet-4.x": an(50, 30_000, 8_000),
        "claude-opus-4.x": an(50, 30_000, 8_000),
        "claude-haiku-4-5": an(50, 50_000, 10_000)
      },
      "tier-2": { "claude-sonnet-4.x": an(1_000, 450_000, 90_000), "claude-opus-4.x": an(1_000, 450_000, 90_000) },
      "tier-3": { "claude-sonnet-4.x": an(2_000, 800_000, 160_000), "claude-opus-4.x": an(2_000, 800_000, 160_000) },
      "tier-4": {
        "claude-sonnet-4.x": an(4_000, 2_000_000, 400_000),
        "claude-opus-4.x": an(4_000, 2_000_000, 400_000),
        "claude-haiku-4-5": an(4_000, 4_000_000, 800_000)
      }
    }
  },
  gemini: {
    tiers: {
      free: {
        "gemini-2.0-flash": { rpm: 15, tpm: 1_000_000, rpd: 1_500, source: "GM-zh", date: "2025" },
        "gemini-2.5-flash-preview": { rpm: 10, tpm: 250_000, rpd: 500, source: "GM-zh", date: "2025" }
      },
      "tier-1": {
        "gemini-2.0-flash": { rpm: 2_000, tpm: 4_000_000, source: "GM-zh", date: "2025" },
        "gemini-2.5-pro-preview": { rpm: 150, tpm: 2_000_000, rpd: 1_000, source: "GM-zh", date: "2025" }
      }
    }
  },
  groq: {
    tiers: {
      free: {
        "llama-3.1-8b-instant": { rpm: 30, rpd: 14_400, tpm: 6_000, tpd: 500_000, source: "GQ-doc", date: "undated" },
        "llama-3.3-70b-versatile": { rpm: 30, rpd: 1_000, tpm: 12_000, tpd: 100_000, source: "GQ-doc", date: "undated" }
      }
    }
  },
  mistral: {
    tiers: {
      free: {
        "*": {
          rps: 1,
          tpm: 500_000,
          source: "MI-free",
          date: "undated",
          note: "per organization, across models; the 1B tokens per month are not modelled"
        }
      }
    }
  },
  openrouter: {
    tiers: {
      free: {
        "*:free": { rpm: 20, rpd: 50, source: "OR-doc", date: "undated", note: "accounts with under 10 credits purchased" }
      },
      "free-10-credits": {
        "*:free": { rpm: 20, rpd: 1_000, source: "OR-doc", date: "undated", note: "accounts with 10 credits or more purchased" }
      }
    }
  }
}

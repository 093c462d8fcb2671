/**
 * The typed errors of the `Provider` module.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * No published preset for this provider, tier or model. `known` lists the alternatives at the level that did
 * not match: providers with presets, the provider's tiers, or the tier's model families.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const result = Provider.presetQuotas({ provider: "anthropic", tier: "tier-9", model: "claude-sonnet-4-5" })
 * if (Either.isLeft(result)) console.log(result.left.known) // ["tier-1", "tier-2", "tier-3", "tier-4"]
 * ```
 * @since 0.1.0
 */
export class UnknownPreset extends Schema.TaggedError<UnknownPreset>()("UnknownPreset", {
  provider: Schema.String,
  tier: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  /** What did not match. */
  level: Schema.Literal("provider", "tier", "model"),
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const known = this.known.length > 0 ? this.known.join(", ") : "none"
    switch (this.level) {
      case "provider":
        return `no presets for provider "${this.provider}" (providers with presets: ${known})`
      case "tier":
        return `no tier "${this.tier}" in the ${this.provider} presets (known tiers: ${known})`
      case "model":
        return `no ${this.provider} ${this.tier} preset for model "${this.model}" (known models: ${known})`
    }
  }
}

/**
 * A provider name that the registry does not know.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const result = Provider.get("openia")
 * if (Either.isLeft(result)) console.log(result.left.message) // unknown provider "openia" (known: openai, ...)
 * ```
 * @since 0.1.0
 */
export class UnknownProvider extends Schema.TaggedError<UnknownProvider>()("UnknownProvider", {
  provider: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `unknown provider "${this.provider}" (known: ${this.known.join(", ")})`
  }
}

/**
 * A request body that cannot be charged: not an object, a malformed output limit, or a limit the provider
 * requires (Anthropic's `max_tokens`) left out.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const charge = Provider.providers.anthropic.chargeOf({ model: "claude-sonnet-4-5", messages: [] })
 * if (Either.isLeft(charge)) console.log(charge.left.message) // anthropic: max_tokens is required ...
 * ```
 * @since 0.1.0
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  provider: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `${this.provider}: ${this.issue}`
  }
}

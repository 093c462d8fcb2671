/**
 * The emulator's configuration: decoded from plain input with defaults.
 *
 * @example
 * import { decodeConfig } from "./Config.js"
 * const config = decodeConfig({ style: "anthropic", windowMs: 5_000, limits: { requests: 50, input_tokens: 30_000, output_tokens: 8_000 } })
 */
import { Data, Effect, ParseResult, Schema } from "effect"
import { type Metric, metrics, type Quotas } from "./Limits.js"

const PositiveInt = Schema.Int.pipe(Schema.positive())
const NonNegative = Schema.Number.pipe(Schema.nonNegative())

/**
 * A quota in the input: a bare limit (per the config's `windowMs`) or a limit with its own window.
 *
 * @example
 * const a: typeof QuotaInput.Type = 60
 * const b: typeof QuotaInput.Type = { limit: 1_000, windowMs: 86_400_000 }
 */
export const QuotaInput = Schema.Union(
  PositiveInt,
  Schema.Struct({ limit: PositiveInt, windowMs: Schema.optional(PositiveInt) })
)

/**
 * The configuration schema. Defaults: `style: "openai"`, `algorithm: "token-bucket"`,
 * `windowMs: 60000`, `limits: {}` (nothing limited), `limitHeaders: true`,
 * `latency: { baseMs: 0, perTokenMs: 0 }`, `completionFraction: 0.6`.
 * The `openai` style limits only `requests` and `tokens`.
 *
 * @example
 * const config = Schema.decodeUnknownSync(EmulatorConfig)({ limits: { requests: 60, tokens: 30_000 } })
 */
export const EmulatorConfig = Schema.Struct({
  style: Schema.optionalWith(Schema.Literal("openai", "anthropic"), { default: () => "openai" as const }),
  algorithm: Schema.optionalWith(Schema.Literal("token-bucket", "sliding-window"), {
    default: () => "token-bucket" as const
  }),
  windowMs: Schema.optionalWith(PositiveInt, { default: () => 60_000 }),
  limits: Schema.optionalWith(
    Schema.Struct({
      requests: Schema.optional(QuotaInput),
      tokens: Schema.optional(QuotaInput),
      input_tokens: Schema.optional(QuotaInput),
      output_tokens: Schema.optional(QuotaInput)
    }),
    { default: () => ({}) }
  ),
  limitHeaders: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  latency: Schema.optionalWith(
    Schema.Struct({
      baseMs: Schema.optionalWith(NonNegative, { default: () => 0 }),
      perTokenMs: Schema.optionalWith(NonNegative, { default: () => 0 })
    }),
    { default: () => ({ baseMs: 0, perTokenMs: 0 }) }
  ),
  completionFraction: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.6 })
}).pipe(
  Schema.filter((config) =>
    config.style === "openai" && (config.limits.input_tokens !== undefined || config.limits.output_tokens !== undefined)
      ? "the openai style limits only requests and tokens; input_tokens and output_tokens need style \"anthropic\""
      : undefined
  )
)

/**
 * A decoded configuration, every field present.
 *
 * @example
 * const style: EmulatorConfig["style"] = "openai"
 */
export type EmulatorConfig = typeof EmulatorConfig.Type

/**
 * What {@link decodeConfig} accepts: every field optional.
 *
 * @example
 * const input: EmulatorConfigInput = { style: "anthropic", limits: { requests: 50, output_tokens: { limit: 8_000 } } }
 */
export type EmulatorConfigInput = typeof EmulatorConfig.Encoded

/**
 * The configuration could not be decoded.
 *
 * @example
 * decodeConfig({ windowMs: -1 }).pipe(Effect.catchTag("InvalidConfig", (e) => Effect.logError(e.message)))
 */
export class InvalidConfig extends Data.TaggedError("InvalidConfig")<{ readonly message: string }> {}

/**
 * Decodes and defaults a configuration.
 *
 * @example
 * const config = yield* decodeConfig({ limits: { requests: 3 } })
 */
export const decodeConfig = (input: EmulatorConfigInput): Effect.Effect<EmulatorConfig, InvalidConfig> =>
  Schema.decodeUnknown(EmulatorConfig)(input).pipe(
    Effect.mapError((error) =>
      new InvalidConfig({ message: `Invalid emulator config: ${ParseResult.TreeFormatter.formatErrorSync(error)}` })
    )
  )

/**
 * Decodes and defaults a configuration given as JSON text (for command lines and environment variables).
 *
 * @example
 * const config = yield* parseConfig('{"style":"anthropic","limits":{"requests":50}}')
 */
export const parseConfig = (json: string): Effect.Effect<EmulatorConfig, InvalidConfig> =>
  Schema.decodeUnknown(Schema.parseJson(EmulatorConfig))(json).pipe(
    Effect.mapError((error) =>
      new InvalidConfig({ message: `Invalid emulator config: ${ParseResult.TreeFormatter.formatErrorSync(error)}` })
    )
  )

/**
 * The quotas a configuration sets, each with its window resolved.
 *
 * @example
 * quotasOf(config) // { requests: { limit: 3, windowMs: 60000 } }
 */
export const quotasOf = (config: EmulatorConfig): Quotas => {
  const out: { [M in Metric]?: { limit: number; windowMs: number } } = {}
  for (const metric of metrics) {
    const quota = config.limits[metric]
    if (quota === undefined) continue
    out[metric] = typeof quota === "number"
      ? { limit: quota, windowMs: config.windowMs }
      : { limit: quota.limit, windowMs: quota.windowMs ?? config.windowMs }
  }
  return out
}

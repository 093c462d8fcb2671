/**
 * AWS Bedrock: requests and tokens per minute (and tokens per day) per model, with separate on-demand and
 * cross-Region quotas. A call settles at `input + cache writes + output × burndown`; cache reads are free. No
 * rate-limit headers are sent.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { anthropicCounts, anthropicModel, anthropicUsageObject } from "../internal/provider/anthropicShape.js"
import { withOverrides } from "../internal/provider/family.js"
import { at, count, isRecord, list, usageFrom } from "../internal/provider/json.js"
import { optionalLimit, requestObject } from "../internal/provider/openaiShape.js"
import { promptOf } from "../internal/provider/prompt.js"
import { requestQuotas, tokenQuotas } from "../internal/provider/quotas.js"
import { retryAdvice } from "../internal/provider/retry.js"
import * as Tokens from "../internal/provider/tokens.js"
import type { Charging, Limits, Provider } from "../Provider.js"
import type { QuotaInput, Usage } from "../Quota.js"
import type { InvalidRequest } from "./Errors.js"
import { MEDIA_TOKENS } from "./Anthropic.js"

/**
 * The family of a Bedrock model id: the ARN prefix, the version (`-v1:0`, `-v1:0:200k`) and the date go; the
 * cross-Region inference prefix (`us.`, `eu.`, `apac.`, `global.`) stays, since cross-Region quotas are separate
 * from on-demand ones. Bedrock sets quotas per model, so Sonnet 4 and Sonnet 4.5 stay apart.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.bedrockFamily("anthropic.claude-sonnet-4-5-20250929-v1:0") // "anthropic.claude-sonnet-4-5"
 * Provider.Bedrock.bedrockFamily("us.anthropic.claude-sonnet-4-20250514-v1:0") // "us.anthropic.claude-sonnet-4"
 * ```
 * @since 0.1.0
 */
export const bedrockFamily = (model: string): string =>
  model
    .replace(/^arn:[^/]+\//, "")
    .replace(/-v\d+(?::\d+)*(?::\d+k)?$/, "")
    .replace(/:\d+(?::\d+k)?$/, "")
    .replace(/-\d{8}$/, "")

/**
 * Models whose output tokens burn 5 quota tokens each. AWS names Claude Opus 4 and Claude Sonnet 4 under "Token
 * burndown rate for Anthropic Claude 4 models"; the page seen was truncated, and the rest of the Claude 4
 * generation is listed here on the strength of that heading. `burndownOf` applies the rule to any Claude 4.x id;
 * every other model burns 1. Override with `make({ burndown })`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.BURNDOWN_MODELS.includes("anthropic.claude-sonnet-4") // true
 * ```
 * @since 0.1.0
 */
export const BURNDOWN_MODELS: ReadonlyArray<string> = [
  "anthropic.claude-opus-4",
  "anthropic.claude-opus-4-1",
  "anthropic.claude-opus-4-5",
  "anthropic.claude-sonnet-4",
  "anthropic.claude-sonnet-4-5",
  "anthropic.claude-haiku-4-5"
]

/**
 * The output burndown of a model: 5 for the Claude 4 generation (`claude-{opus,sonnet,haiku}-4…`, with or
 * without Bedrock prefixes), 1 otherwise.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.burndownOf("us.anthropic.claude-opus-4-1-20250805-v1:0") // 5
 * Provider.Bedrock.burndownOf("anthropic.claude-3-5-sonnet-20240620-v1:0") // 1
 * Provider.Bedrock.burndownOf("meta.llama3-1-70b-instruct-v1:0") // 1
 * ```
 * @since 0.1.0
 */
export const burndownOf = (model: string | undefined): number =>
  /(?:^|[.\/])claude-(?:opus|sonnet|haiku)-4(?:$|[-.@])/.test(model ?? "") ? 5 : 1

/**
 * The output maximum of a model, charged when a body sets no output limit ("unset means the model maximum, e.g.
 * 64,000 for Claude Sonnet"), from Anthropic's model table: Sonnet 4.x, Haiku 4.5 and Claude 3.7 Sonnet 64,000;
 * Opus 4 and 4.1 32,000; Claude 3.5 8,192; Claude 3 4,096. Unknown models: `DEFAULT_MAX_TOKENS`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.maxOutputOf("anthropic.claude-sonnet-4-20250514-v1:0") // 64000
 * ```
 * @since 0.1.0
 */
export const maxOutputOf = (model: string | undefined): number => {
  const name = model ?? ""
  if (/claude-(?:sonnet-4|haiku-4|3-7-sonnet)/.test(name)) return 64_000
  if (/claude-opus-4-(?:5)/.test(name)) return 64_000
  if (/claude-opus-4/.test(name)) return 32_000
  if (/claude-3-5/.test(name)) return 8_192
  if (/claude-3-/.test(name)) return 4_096
  return DEFAULT_MAX_TOKENS
}

/**
 * The output charged for a model outside the `maxOutputOf` table when a body sets no output limit.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.DEFAULT_MAX_TOKENS // 4096
 * ```
 * @since 0.1.0
 */
export const DEFAULT_MAX_TOKENS = 4096

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const options: Provider.Bedrock.Options = { burndown: { "anthropic.claude-sonnet-4-6": 5 }, burndownAtAdmission: false }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** Burndown per model family (`bedrockFamily`), over `burndownOf`. */
  readonly burndown?: Readonly<Record<string, number>>
  /**
   * Whether the admission charge applies the burndown to the output limit (default `true`): the charge is then
   * the most the call can settle at. Bedrock itself reserves `input + max_tokens` at the start and applies the
   * burndown as output is produced; `false` charges that reservation (more admitted, possible excess at settling).
   */
  readonly burndownAtAdmission?: boolean
}

/**
 * The Bedrock charging rule.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.charging.refunds // true
 * ```
 * @since 0.1.0
 */
export const charging: Charging = {
  metrics: ["requests", "tokens"],
  refunds: true,
  rule:
    "tokens = input + cache writes + burndown × output (burndown 5 for Claude 4 models, 1 otherwise; cache reads free); " +
    "at admission the output is the output limit, or the model maximum when unset; settled to the actual tokens."
}

/**
 * Bedrock quotas: requests per minute; tokens per minute and per day (`fixed-window`), with refunds.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Bedrock.quotas({ rpm: 200, tpm: 200_000, tpd: 200_000 * 1440 })
 * ```
 * @since 0.1.0
 */
export const quotas = (limits: Limits): Array<QuotaInput> => [
  ...requestQuotas(limits),
  ...tokenQuotas("tokens", limits.tpm, limits.tpd, true)
]

interface Counts {
  readonly input?: number
  readonly output?: number
  readonly cacheWrite?: number
}

/** Counts of every Bedrock response shape: Anthropic Messages, Converse, Llama, Titan and invocation metrics. */
const countsOf = (body: unknown): Counts | undefined => {
  if (!isRecord(body)) return undefined
  const metrics = body["amazon-bedrock-invocationMetrics"]
  if (isRecord(metrics)) {
    return {
      input: count(metrics["inputTokenCount"]) ?? 0,
      output: count(metrics["outputTokenCount"]) ?? 0,
      cacheWrite: count(metrics["cacheWriteInputTokenCount"]) ?? 0
    }
  }
  // Converse and ConverseStream `metadata`.
  const converse = at(body, "usage") ?? at(body, "metadata", "usage")
  if (isRecord(converse) && (count(converse["inputTokens"]) !== undefined || count(converse["outputTokens"]) !== undefined)) {
    return {
      input: count(converse["inputTokens"]) ?? 0,
      output: count(converse["outputTokens"]) ?? 0,
      cacheWrite: count(converse["cacheWriteInputTokens"]) ?? 0
    }
  }
  // Llama.
  if (count(body["prompt_token_count"]) !== undefined || count(body["generation_token_count"]) !== undefined) {
    return { input: count(body["prompt_token_count"]) ?? 0, output: count(body["generation_token_count"]) ?? 0 }
  }
  // Titan.
  if (count(body["inputTextTokenCount"]) !== undefined) {
    const output = list(body["results"]).reduce<number>((sum, r) => sum + (count(at(r, "tokenCount")) ?? 0), 0)
    return { input: count(body["inputTextTokenCount"]) ?? 0, output }
  }
  // Anthropic Messages (and its stream events).
  const anthropic = anthropicCounts(anthropicUsageObject(body))
  if (anthropic === undefined) return undefined
  return {
    ...(anthropic.input === undefined ? {} : { input: anthropic.input }),
    ...(anthropic.output === undefined ? {} : { output: anthropic.output }),
    ...(anthropic.cacheWrite === undefined ? {} : { cacheWrite: anthropic.cacheWrite })
  }
}

/**
 * A Bedrock provider with options.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * const bedrock = Provider.Bedrock.make({ burndownAtAdmission: false })
 * ```
 * @since 0.1.0
 */
export const make = (options: Options = {}): Provider => {
  const family = withOverrides(bedrockFamily)
  const burndown = (model: string | undefined): number => {
    const own = model === undefined ? undefined : options.burndown?.[bedrockFamily(model)]
    return own ?? burndownOf(model)
  }
  const chargeOf = (request: unknown, model?: string): Either.Either<Usage, InvalidRequest> =>
    Either.gen(function*() {
      const body = yield* requestObject("bedrock", request)
      const id = model ?? (typeof body["modelId"] === "string" ? body["modelId"] : undefined)
      // Anthropic on InvokeModel, Converse, Llama, Titan.
      const limit = (yield* optionalLimit("bedrock", body, ["max_tokens"])) ??
        (yield* optionalLimit("bedrock", body, ["inferenceConfig", "maxTokens"])) ??
        (yield* optionalLimit("bedrock", body, ["max_gen_len"])) ??
        (yield* optionalLimit("bedrock", body, ["textGenerationConfig", "maxTokenCount"])) ??
        maxOutputOf(id)
      const input = Tokens.estimatePromptTokens(promptOf(body), MEDIA_TOKENS)
      const usage: Usage = { tokens: input + limit * (options.burndownAtAdmission === false ? 1 : burndown(id)) }
      return usage
    })
  const usageOf = (response: unknown, model?: string): Usage | undefined => {
    const counts = countsOf(response)
    if (counts === undefined) return undefined
    // A `message_delta` event reports output alone: without the input the total is unknown until the final
    // chunk's invocation metrics.
    if (counts.input === undefined) return undefined
    const id = model ?? anthropicModel(response)
    return usageFrom({ tokens: counts.input + (counts.cacheWrite ?? 0) + (counts.output ?? 0) * burndown(id) })
  }
  return {
    name: "bedrock",
    charging,
    chargeOf,
    usageOf,
    streamUsage: usageOf,
    parseHeaders: () => [],
    retryAfter: (status, headers, body, now) => retryAdvice(status, headers, body, now),
    family,
    quotas
  }
}

/**
 * Bedrock with the default options. Pass the model id as `model`: InvokeModel bodies do not name it.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const { bedrock } = Provider.Bedrock
 * const id = "anthropic.claude-sonnet-4-20250514-v1:0"
 * Either.getOrThrow(bedrock.chargeOf({ anthropic_version: "bedrock-2023-05-31", max_tokens: 1000, messages: [{ role: "user", content: "Hi" }] }, id))
 * // { tokens: 5005 }: ceil(2 / 3.5) + 4 (message) input + 5 × 1000
 * bedrock.usageOf({ usage: { input_tokens: 100, output_tokens: 200, cache_read_input_tokens: 900 } }, id) // { tokens: 1100 }
 * ```
 * @since 0.1.0
 */
export const bedrock: Provider = make()

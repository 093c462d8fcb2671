/**
 * Providers built from the parts that differ: every part left out speaks OpenAI's shapes (the most common
 * wire format among LLM APIs), and a provider object from anywhere can be checked before a limiter uses it.
 */
import type { Charging, MakeOptions, Provider } from "../../Provider.js"
import { DEFAULT_MAX_TOKENS, MEDIA_TOKENS } from "../../Provider/OpenAI.js"
import { withOverrides } from "./family.js"
import { parseLooseReset, parseOpenAIStyle } from "./headers.js"
import { isRecord } from "./json.js"
import { chargeOpenAIShape, openaiTokensUsage } from "./openaiShape.js"
import { requestQuotas, tokenQuotas } from "./quotas.js"
import { retryAdvice } from "./retry.js"
import * as Tokens from "./tokens.js"

const identity = (model: string) => model

const chargingOf = (given: Partial<Charging> | undefined, defaultMaxTokens: number): Charging => {
  const refunds = given?.refunds ?? false
  return {
    metrics: given?.metrics ?? ["requests", "tokens"],
    refunds,
    rule: given?.rule ??
      `tokens = estimated prompt tokens + max_tokens (or ${defaultMaxTokens}) × n, ` +
        (refunds ? "settled to the usage the response reports." : "no refund.")
  }
}

/**
 * A provider from its name and the parts that differ from an OpenAI-compatible API: prompts estimated from
 * characters plus the output limit, no refund, `x-ratelimit-{limit,remaining,reset}-<metric>` headers (resets
 * as Go durations, seconds or timestamps, windows left for the limiter to learn), usage from `usage` (chat,
 * Responses, embeddings), the SDKs' retry rules, model names as their own family.
 *
 * @example
 * makeProvider({ name: "my-gateway", charging: { refunds: true } }).charging.refunds // true
 */
export const makeProvider = (options: MakeOptions): Provider => {
  const defaultMaxTokens = options.defaultMaxTokens ?? DEFAULT_MAX_TOKENS
  const charging = chargingOf(options.charging, defaultMaxTokens)
  const family = options.family ?? identity
  const usageOf = options.usageOf ?? ((body: unknown) => openaiTokensUsage(body))
  return {
    name: options.name,
    charging,
    chargeOf: options.chargeOf ??
      chargeOpenAIShape(options.name, {
        defaultMaxTokens,
        promptTokens: (prompt) => Tokens.estimatePromptTokens(prompt, MEDIA_TOKENS),
        family
      }),
    usageOf,
    streamUsage: options.streamUsage ?? usageOf,
    parseHeaders: options.parseHeaders ?? ((headers, now) => parseOpenAIStyle(headers, now, () => undefined, parseLooseReset)),
    retryAfter: options.retryAfter ?? ((status, headers, body, now) => retryAdvice(status, headers, body, now)),
    family: withOverrides(family),
    quotas: options.quotas ??
      ((limits) => [...requestQuotas(limits), ...tokenQuotas("tokens", limits.tpm, limits.tpd, charging.refunds)])
  }
}

const FUNCTIONS = ["chargeOf", "usageOf", "streamUsage", "parseHeaders", "retryAfter", "family", "quotas"] as const

/**
 * What a value lacks to be a `Provider`, each as the field and what it must be; empty for a provider.
 *
 * @example
 * providerIssues({ name: "x" }) // ["charging (an object)", "chargeOf (a function)", ...]
 */
export const providerIssues = (value: unknown): ReadonlyArray<string> => {
  if (!isRecord(value)) return ["an object"]
  const issues: Array<string> = []
  if (typeof value["name"] !== "string" || value["name"].trim() === "") issues.push("name (a non-empty string)")
  const charging = value["charging"]
  if (!isRecord(charging)) issues.push("charging (an object)")
  else {
    const metrics = charging["metrics"]
    if (!Array.isArray(metrics) || !metrics.every((metric) => typeof metric === "string")) {
      issues.push("charging.metrics (a list of metric names)")
    }
    if (typeof charging["refunds"] !== "boolean") issues.push("charging.refunds (a boolean)")
    if (typeof charging["rule"] !== "string") issues.push("charging.rule (a string)")
  }
  for (const field of FUNCTIONS) if (typeof value[field] !== "function") issues.push(`${field} (a function)`)
  return issues
}

/**
 * The demo's workload: a deterministic mix of chat calls drawn from a seeded generator.
 *
 * - prompt sizes are log-uniform over 100-3,000 tokens (many short prompts, a long tail of big ones);
 * - `max_tokens` is one of the values clients commonly set, 256 to 1,024;
 * - the tokens actually generated are 15-95% of `max_tokens` (always below it).
 *
 * @example
 * ```ts
 * import { makeWorkload } from "./Workload.js"
 * const calls = makeWorkload(300, 42)
 * calls[0] // { id: 1, promptTokens: 773, maxTokens: 512, completionTokens: 425 }
 * ```
 */

/**
 * One chat call of the workload, with its token counts fixed in advance.
 *
 * @example
 * ```ts
 * const call: ChatCall = { id: 1, promptTokens: 900, maxTokens: 512, completionTokens: 340 }
 * ```
 */
export interface ChatCall {
  readonly id: number
  readonly promptTokens: number
  readonly maxTokens: number
  /** Tokens the model will generate; below `maxTokens`. */
  readonly completionTokens: number
}

/**
 * A seeded pseudo-random generator (mulberry32): the same seed gives the same sequence in [0, 1).
 *
 * @example
 * ```ts
 * const random = seededRandom(7)
 * const a = random() // always the same first value for seed 7
 * ```
 */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The `max_tokens` values the workload draws from, with their weights.
 *
 * @example
 * ```ts
 * maxTokensChoices.map(([value]) => value) // [256, 512, 768, 1024]
 * ```
 */
export const maxTokensChoices: ReadonlyArray<readonly [value: number, weight: number]> = [
  [256, 3],
  [512, 4],
  [768, 2],
  [1024, 3]
]

const pick = (random: () => number, choices: ReadonlyArray<readonly [number, number]>): number => {
  const total = choices.reduce((sum, [, weight]) => sum + weight, 0)
  let x = random() * total
  for (const [value, weight] of choices) {
    if (x < weight) return value
    x -= weight
  }
  return choices[choices.length - 1]![0]
}

/**
 * Builds `calls` chat calls from `seed`.
 *
 * @example
 * ```ts
 * const calls = makeWorkload(60, 1)
 * calls.length // 60
 * calls.every((c) => c.completionTokens < c.maxTokens) // true
 * ```
 */
export const makeWorkload = (calls: number, seed: number): ReadonlyArray<ChatCall> => {
  const random = seededRandom(seed)
  return Array.from({ length: calls }, (_, i) => {
    const promptTokens = Math.round(100 * Math.pow(30, random()))
    const maxTokens = pick(random, maxTokensChoices)
    const completionTokens = Math.max(1, Math.floor(maxTokens * (0.15 + 0.8 * random())))
    return { id: i + 1, promptTokens, maxTokens, completionTokens: Math.min(completionTokens, maxTokens - 1) }
  })
}

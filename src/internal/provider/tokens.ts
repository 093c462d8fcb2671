/**
 * Token counts before a call: exact BPE counts with `gpt-tokenizer` for OpenAI models, and a character-based
 * estimate for every other provider, whose tokenizers are not public.
 */
import type * as Cl100k from "gpt-tokenizer/encoding/cl100k_base"
import type * as O200k from "gpt-tokenizer/encoding/o200k_base"
import { createRequire } from "node:module"
import type { Prompt } from "./prompt.js"

// The encodings' rank tables cost about 300 ms and 35 MB of heap to load, so they are loaded on the first count
// in each encoding rather than with the library: most programs never count an OpenAI prompt, and one that
// does needs only one of the two. Counting stays synchronous (an admission charge is computed inside
// synchronous code), hence `require` (gpt-tokenizer ships a CommonJS build of each encoding) rather than a
// dynamic `import()`.
const require = createRequire(import.meta.url)
let cl100k: typeof Cl100k | undefined
let o200k: typeof O200k | undefined
const cl100kBase = (): typeof Cl100k => (cl100k ??= require("gpt-tokenizer/encoding/cl100k_base"))
const o200kBase = (): typeof O200k => (o200k ??= require("gpt-tokenizer/encoding/o200k_base"))

/**
 * Characters per token of the character estimate. OpenAI's rule of thumb is about 4 characters of English per
 * token; Claude, Gemini, Llama and Mistral tokenizers split the same text into somewhat more tokens, and code
 * and numbers split finer still, so 3.5 errs on the high side: an admission charge that is too high only
 * delays a call, and the charge is settled to the reported usage where the provider refunds.
 *
 * @example
 * Math.ceil(44 / CHARS_PER_TOKEN) // 13
 */
export const CHARS_PER_TOKEN = 3.5

/**
 * Tokens added per message by the character estimate: the role and the turn delimiters the provider wraps
 * around each message (OpenAI's published chat format costs 3 to 4 tokens a message).
 *
 * @example
 * 2 * MESSAGE_OVERHEAD_TOKENS // 8, for a system and a user message
 */
export const MESSAGE_OVERHEAD_TOKENS = 4

/**
 * The character estimate of a text: `ceil(ascii / CHARS_PER_TOKEN)` plus one token for every non-ASCII code
 * point. Scripts such as Chinese, Japanese or Korean take about one token per character or more, so dividing
 * their length by 3.5 would undercount them several times over; counting accented Latin letters the same way
 * only errs high.
 *
 * @example
 * estimateTextTokens("Hello, Claude") // 4
 * estimateTextTokens("こんにちは") // 5
 */
export const estimateTextTokens = (text: string): number => {
  let ascii = 0
  let other = 0
  for (const char of text) {
    if (char.charCodeAt(0) < 128) ascii += 1
    else other += 1
  }
  return Math.ceil(ascii / CHARS_PER_TOKEN) + other
}

/**
 * Flat costs of media whose size a body does not state.
 *
 * @example
 * const media: MediaCosts = { image: 765, lowDetailImage: 85, otherMedia: 1000 }
 */
export interface MediaCosts {
  readonly image: number
  readonly lowDetailImage: number
  readonly otherMedia: number
}

/**
 * The character estimate of a whole prompt: texts, per-message overhead and media.
 *
 * @example
 * estimatePromptTokens(promptOf({ messages: [{ role: "user", content: "Hello, Claude" }] }), media) // 8
 */
export const estimatePromptTokens = (prompt: Prompt, media: MediaCosts): number =>
  prompt.texts.reduce((sum, text) => sum + estimateTextTokens(text), 0) +
  prompt.messages * MESSAGE_OVERHEAD_TOKENS +
  prompt.images * media.image +
  prompt.lowDetailImages * media.lowDetailImage +
  prompt.otherMedia * media.otherMedia

/**
 * The two BPE encodings of OpenAI's current and previous model generations.
 *
 * @example
 * const encoding: Encoding = "o200k_base"
 */
export type Encoding = "o200k_base" | "cl100k_base"

/**
 * The encoding of an OpenAI model: `cl100k_base` for GPT-4 (not 4o, 4.1 or 4.5), GPT-3.5 and the
 * `text-embedding-ada-002` / `text-embedding-3-*` embeddings; `o200k_base` for everything else (GPT-4o, 4.1,
 * 4.5, 5, the o-series, and unknown models).
 *
 * @example
 * encodingFor("gpt-4-turbo") // "cl100k_base"
 */
export const encodingFor = (model: string | undefined): Encoding => {
  const name = (model ?? "").toLowerCase().replace(/^ft:/, "").replace(/^openai\//, "")
  return /^(?:gpt-4(?![o.])|gpt-35|gpt-3\.5|text-embedding-(?:ada|3))/.test(name) ? "cl100k_base" : "o200k_base"
}

/**
 * The exact number of tokens of a text in a model's encoding.
 *
 * @example
 * countTokens("Hello, world!", "gpt-4o") // 4
 */
export const countTokens = (text: string, model: string | undefined): number =>
  encodingFor(model) === "cl100k_base" ? cl100kBase().countTokens(text) : o200kBase().countTokens(text)

/**
 * Tokens added per message by OpenAI's chat format (`<|start|>role<|message|>…<|end|>`: 3 tokens plus one for
 * the role), and once per request for priming the reply.
 *
 * @example
 * OPENAI_TOKENS_PER_MESSAGE + OPENAI_REPLY_PRIMING_TOKENS // 7, the overhead of a one-message chat
 */
export const OPENAI_TOKENS_PER_MESSAGE = 4
/**
 * See `OPENAI_TOKENS_PER_MESSAGE`.
 *
 * @example
 * OPENAI_REPLY_PRIMING_TOKENS // 3
 */
export const OPENAI_REPLY_PRIMING_TOKENS = 3

/**
 * The BPE count of a whole prompt in OpenAI's chat format, plus flat media costs.
 *
 * @example
 * countPromptTokens(promptOf({ messages: [{ role: "user", content: "Hello, world!" }] }), "gpt-4o", media) // 4 + 4 + 3
 */
export const countPromptTokens = (prompt: Prompt, model: string | undefined, media: MediaCosts): number =>
  prompt.texts.reduce((sum, text) => sum + countTokens(text, model), 0) +
  (prompt.messages > 0 ? prompt.messages * OPENAI_TOKENS_PER_MESSAGE + OPENAI_REPLY_PRIMING_TOKENS : 0) +
  prompt.images * media.image +
  prompt.lowDetailImages * media.lowDetailImage +
  prompt.otherMedia * media.otherMedia

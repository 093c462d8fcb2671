/**
 * Model names to families: dated snapshots share the bucket of their family.
 */
import type { FamilyOverrides } from "../../Provider.js"

/**
 * A `family` function that consults the overrides first, by the name as given and then by its family.
 *
 * @example
 * withOverrides(openaiFamily)("gpt-4o-2024-08-06", { "gpt-4o": "shared" }) // "shared"
 */
export const withOverrides =
  (normalize: (model: string) => string) => (model: string, overrides?: FamilyOverrides): string => {
    const direct = overrides?.[model]
    if (direct !== undefined) return direct
    const family = normalize(model.trim())
    return overrides?.[family] ?? family
  }

/**
 * OpenAI names: `-YYYY-MM-DD` and `-MMDD` snapshots drop their date (`gpt-4o-2024-08-06` → `gpt-4o`,
 * `gpt-4o-mini-2024-07-18` → `gpt-4o-mini`, `gpt-3.5-turbo-0125` → `gpt-3.5-turbo`); fine-tunes
 * (`ft:gpt-4o-mini-2024-07-18:org::id`) map to their base model.
 *
 * @example
 * openaiFamily("gpt-4o-mini-2024-07-18") // "gpt-4o-mini"
 */
export const openaiFamily = (model: string): string => {
  const base = model.startsWith("ft:") ? (model.slice(3).split(":")[0] ?? model) : model
  return base.replace(/-\d{4}-\d{2}-\d{2}$/, "").replace(/-\d{4}$/, "")
}

/**
 * Anthropic names: snapshots (`-20250929`, Vertex `@20250929`) and `-latest` aliases drop their suffix; Opus 4.x
 * and Sonnet 4.x each share one pool across their 4.x versions (`claude-sonnet-4-5-20250929` and
 * `claude-sonnet-4-20250514` → `claude-sonnet-4.x`); other models keep their own name (`claude-haiku-4-5`,
 * `claude-3-7-sonnet`).
 *
 * @example
 * anthropicFamily("claude-sonnet-4-5-20250929") // "claude-sonnet-4.x"
 */
export const anthropicFamily = (model: string): string => {
  const base = model.replace(/(?:-latest|[-@]\d{8})$/, "")
  const pooled = /^claude-(opus|sonnet)-4(?:-\d{1,2})?$/.exec(base)
  return pooled === null ? base : `claude-${pooled[1]}-4.x`
}

/**
 * Gemini names: resource prefixes (`models/`, `publishers/google/models/`, `projects/…/models/`) drop, as do
 * stable version suffixes (`gemini-2.0-flash-001` → `gemini-2.0-flash`), `-latest`, and the dates of previews
 * and experiments (`gemini-2.5-flash-preview-05-20` → `gemini-2.5-flash-preview`).
 *
 * @example
 * geminiFamily("models/gemini-2.0-flash-001") // "gemini-2.0-flash"
 */
export const geminiFamily = (model: string): string =>
  model
    .replace(/^.*\bmodels\//, "")
    .replace(/-latest$/, "")
    .replace(/-\d{3}$/, "")
    .replace(/-(preview|exp)-\d{2}-\d{2}$/, "-$1")
    .replace(/-(preview|exp)-\d{4}$/, "-$1")

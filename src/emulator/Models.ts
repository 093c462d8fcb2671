/**
 * The models endpoints (`GET /v1/models`, `GET /v1/models/{id}`) in both providers' shapes: OpenAI's
 * `{ object: "list", data: [{ id, object: "model", created, owned_by }] }`, and Anthropic's page
 * `{ data: [{ type: "model", id, display_name, created_at }], has_more, first_id, last_id }` for a request
 * that sends `anthropic-version` (as the Anthropic SDK always does). The emulator serves any model name,
 * so any id is found; the list holds a few defaults and every model a request has named.
 *
 * They are not charged on any quota: listing models spends no tokens, and neither provider counts it
 * toward the limits of generation (the reference notes list no limit on it).
 *
 * @example
 * import { modelList } from "./Models.js"
 * modelList("openai", ["my-model"]).data.map((m) => m.id) // ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "my-model"]
 */
import type { Shape } from "./ChatRequest.js"

/**
 * The models listed whatever was requested, per shape.
 *
 * @example
 * DEFAULT_MODELS.anthropic // ["claude-sonnet-4-5", "claude-haiku-4-5"]
 */
export const DEFAULT_MODELS: { readonly [S in Shape]: ReadonlyArray<string> } = {
  openai: ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"],
  anthropic: ["claude-sonnet-4-5", "claude-haiku-4-5"]
}

// A fixed creation time keeps the answers the same from run to run: 2024-01-01T00:00:00Z.
const CREATED_MS = Date.UTC(2024, 0, 1)

/**
 * One model in the shape of the request.
 *
 * @example
 * model("openai", "gpt-4o") // { id: "gpt-4o", object: "model", created: 1704067200, owned_by: "quotaflow-emulator" }
 */
export const model = (shape: Shape, id: string) =>
  shape === "openai"
    ? { id, object: "model", created: CREATED_MS / 1000, owned_by: "quotaflow-emulator" }
    : { type: "model", id, display_name: id, created_at: new Date(CREATED_MS).toISOString() }

/**
 * The list of models: the defaults of the shape, then the models requests named.
 *
 * @example
 * modelList("anthropic", []).has_more // false
 */
export const modelList = (shape: Shape, seen: ReadonlyArray<string>) => {
  const ids = [...new Set([...DEFAULT_MODELS[shape], ...seen])]
  return shape === "openai"
    ? { object: "list", data: ids.map((id) => model(shape, id)) }
    : { data: ids.map((id) => model(shape, id)), has_more: false, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null }
}

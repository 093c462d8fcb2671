/**
 * What the emulator remembers besides its quotas: the Responses API's responses by id (for
 * `GET /v1/responses/{id}`) and the models it has served (for `GET /v1/models`). Bounded, so a long load
 * test cannot grow it without end; cleared with the quotas by `POST /reset`.
 *
 * @example
 * import { makeStore } from "./Store.js"
 * const store = makeStore()
 * store.putResponse("resp_emu_1", { id: "resp_emu_1", status: "completed" })
 * store.response("resp_emu_1") // { id: "resp_emu_1", status: "completed" }
 */

/**
 * How many responses are kept: the oldest is forgotten first (its id then answers 404, as one OpenAI
 * no longer holds does).
 *
 * @example
 * STORED_RESPONSES // 1000
 */
export const STORED_RESPONSES = 1000

/**
 * How many model names are remembered; later ones are served but not listed.
 *
 * @example
 * REMEMBERED_MODELS // 1000
 */
export const REMEMBERED_MODELS = 1000

/**
 * The emulator's memory of responses and models.
 *
 * @example
 * const store: Store = makeStore()
 * store.sawModel("gpt-4o")
 * store.models() // ["gpt-4o"]
 */
export interface Store {
  /** Stores (or replaces) the response `id`, as the client may fetch it now. */
  readonly putResponse: (id: string, response: unknown) => void
  readonly response: (id: string) => unknown
  /** Notes a model a request named. */
  readonly sawModel: (model: string) => void
  /** The models requests named, in the order first seen. */
  readonly models: () => ReadonlyArray<string>
  readonly reset: () => void
}

/**
 * An empty store.
 *
 * @example
 * const store = makeStore()
 */
export const makeStore = (): Store => {
  let responses = new Map<string, unknown>()
  let models = new Set<string>()
  return {
    putResponse: (id, response) => {
      // A replaced response keeps its place: it was created when it was first stored.
      responses.set(id, response)
      if (responses.size > STORED_RESPONSES) {
        const oldest = responses.keys().next()
        if (oldest.done !== true) responses.delete(oldest.value)
      }
    },
    response: (id) => responses.get(id),
    sawModel: (model) => {
      if (models.size < REMEMBERED_MODELS) models.add(model)
    },
    models: () => [...models],
    reset: () => {
      responses = new Map()
      models = new Set()
    }
  }
}

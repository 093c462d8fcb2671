/**
 * The scripts with their SHA1 digests, as sent with EVALSHA.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { observeLua } from "./observe.js"
import { releaseLua } from "./release.js"
import { reserveLua } from "./reserve.js"
import { settleLua } from "./settle.js"
import { statusLua } from "./status.js"

/** A script as sent: `client.evalsha(script.sha, keys.length, ...keys, ...argv)`. */
export interface Script {
  readonly name: "reserve" | "settle" | "release" | "status" | "observe"
  readonly lua: string
  readonly sha: string
}

const script = (name: Script["name"], lua: string): Script => ({
  name,
  lua,
  sha: createHash("sha1").update(lua).digest("hex")
})

/** The scripts by operation: `scripts.reserve.sha`. */
export const scripts = {
  reserve: script("reserve", reserveLua),
  settle: script("settle", settleLua),
  release: script("release", releaseLua),
  status: script("status", statusLua),
  observe: script("observe", observeLua)
} as const

/** Every script, for SCRIPT LOAD: `allScripts.map((s) => node.script("LOAD", s.lua))`. */
export const allScripts: ReadonlyArray<Script> = Object.values(scripts)

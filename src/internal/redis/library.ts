/**
 * The operations as one Redis Functions library (Redis 7+, Valkey): loaded once with FUNCTION LOAD and called
 * with FCALL. Its helpers and the configurations it has read stay made between calls, which is most of what a
 * script would spend on every call. The library's name carries a digest of its code, so that processes of two
 * versions on one Redis each call their own.
 *
 * A server without Functions (Redis 6 and older) runs the same code as one script per operation, with EVALSHA.
 *
 * The code is the files of `lua/` (see `luaSource.ts`): the layout of the keys (`layout.lua`), what every
 * operation shares (`core.lua`, `meters.lua`, `line.lua`, `call.lua`, `take.lua`), then one file per operation.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { LuaSource, remember } from "./luaSource.js"

/** The operations, as the library names its functions. */
export type Operation = "reserve" | "settle" | "release" | "leave" | "status" | "observe"

const operations: ReadonlyArray<Operation> = ["reserve", "settle", "release", "leave", "status", "observe"]

const body = LuaSource.of([
  "layout.lua",
  "core.lua",
  "meters.lua",
  "line.lua",
  "call.lua",
  "take.lua",
  ...operations.map((operation) => `${operation}.lua`)
])

const digest = createHash("sha1").update(body.text).digest("hex").slice(0, 16)

/** The library's name: `quotaflow_<digest of its code>`. */
export const libraryName = `quotaflow_${digest}`

/** The library as FUNCTION LOAD is given it: its name's line, the files, then the functions it registers. */
export const librarySource = body.around(
  `#!lua name=${libraryName}\n`,
  operations.map((op) => `redis.register_function('${libraryName}_${op}', ${op})\n`).join("")
)

/** The library's code, for FUNCTION LOAD. */
export const libraryCode = librarySource.text

/**
 * How an operation is called: its function's name (FCALL), and the same operation as a script (EVAL / EVALSHA).
 *
 * @example
 * ```ts
 * client.fcall(calls.reserve.function, keys.length, ...keys, config, ...args)
 * ```
 */
export interface Call {
  readonly operation: Operation
  readonly function: string
  readonly lua: string
  readonly sha: string
}

const callOf = (operation: Operation): Call => {
  const script = body.around("", `return ${operation}(KEYS, ARGV)\n`)
  const call = {
    operation,
    function: `${libraryName}_${operation}`,
    lua: script.text,
    sha: createHash("sha1").update(script.text).digest("hex")
  }
  remember(call.function, librarySource)
  remember(call.sha, script)
  return call
}

/** Every operation's call: `calls.reserve.function`. */
export const calls: { readonly [K in Operation]: Call } = {
  reserve: callOf("reserve"),
  settle: callOf("settle"),
  release: callOf("release"),
  leave: callOf("leave"),
  status: callOf("status"),
  observe: callOf("observe")
}

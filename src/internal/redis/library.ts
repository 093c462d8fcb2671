/**
 * The operations as one Redis Functions library (Redis 7+, Valkey): loaded once with FUNCTION LOAD and called
 * with FCALL. Its helpers and the configurations it has read stay made between calls, which is most of what a
 * script would spend on every call. The library's name carries a digest of its code, so that processes of two
 * versions on one Redis each call their own.
 *
 * A server without Functions (Redis 6 and older) runs the same code as one script per operation, with EVALSHA.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { take } from "./close.js"
import { core } from "./core.js"
import { observe } from "./observe.js"
import { release } from "./release.js"
import { reserve } from "./reserve.js"
import { settle } from "./settle.js"
import { status } from "./status.js"

/** The operations, as the library names its functions. */
export type Operation = "reserve" | "settle" | "release" | "status" | "observe"

const operations: ReadonlyArray<Operation> = ["reserve", "settle", "release", "status", "observe"]

const body = core + take + reserve + settle + release + observe + status

const digest = createHash("sha1").update(body).digest("hex").slice(0, 16)

/** The library's name: `quotaflow_<digest of its code>`. */
export const libraryName = `quotaflow_${digest}`

/** The library's code, for FUNCTION LOAD. */
export const libraryCode = `#!lua name=${libraryName}\n` + body +
  operations.map((op) => `redis.register_function('${libraryName}_${op}', ${op})\n`).join("")

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
  const lua = body + `return ${operation}(KEYS, ARGV)\n`
  return {
    operation,
    function: `${libraryName}_${operation}`,
    lua,
    sha: createHash("sha1").update(lua).digest("hex")
  }
}

/** Every operation's call: `calls.reserve.function`. */
export const calls: { readonly [K in Operation]: Call } = {
  reserve: callOf("reserve"),
  settle: callOf("settle"),
  release: callOf("release"),
  status: callOf("status"),
  observe: callOf("observe")
}

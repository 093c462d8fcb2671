/**
 * The Redis backend's Lua, kept as `.lua` files in `lua/` beside this module (the build copies them next to the
 * compiled module: `scripts/copy-lua.mjs`), read once when the module loads and joined into the texts sent to
 * Redis.
 *
 * Each file's text goes in whole, below one comment line naming it (`-- lua/reserve.lua`), so its lines keep
 * their numbers relative to that line. An error Redis raises inside the code names the line of the text it was
 * sent (`user_function:412`, `user_script:411`); `explain` adds the file and line that it comes from.
 *
 * @internal
 */
import { readFileSync } from "node:fs"

interface Part {
  readonly file: string
  /** The line of the joined text where the file's first line is (1-based). */
  readonly first: number
  readonly lines: number
}

const linesOf = (text: string): number => text.split("\n").length - 1

/**
 * Lua text made of files, and where each file's lines are in it.
 *
 * @example
 * ```ts
 * const source = LuaSource.of(["core.lua", "reserve.lua"])
 * source.where(12) // "lua/core.lua:11"
 * ```
 */
export class LuaSource {
  private constructor(readonly text: string, private readonly parts: ReadonlyArray<Part>) {}

  /** The files of `lua/`, in order, each below a line naming it. */
  static of(files: ReadonlyArray<string>): LuaSource {
    let text = ""
    const parts: Array<Part> = []
    for (const file of files) {
      const raw = readFileSync(new URL(`./lua/${file}`, import.meta.url), "utf8")
      // A file without its last newline would run into the next one's header.
      const own = raw.endsWith("\n") ? raw : `${raw}\n`
      text += `-- lua/${file}\n`
      parts.push({ file: `lua/${file}`, first: linesOf(text) + 1, lines: linesOf(own) })
      text += own
    }
    return new LuaSource(text, parts)
  }

  /**
   * The same files with `before` (whole lines) in front and `after` behind: the lines of the files move down by
   * the lines of `before`.
   */
  around(before: string, after: string): LuaSource {
    const shift = linesOf(before)
    return new LuaSource(before + this.text + after, this.parts.map((part) => ({ ...part, first: part.first + shift })))
  }

  /** The file and line of a line of the text (`"lua/reserve.lua:12"`), or undefined outside every file. */
  where(line: number): string | undefined {
    for (const part of this.parts) {
      if (line >= part.first && line < part.first + part.lines) return `${part.file}:${line - part.first + 1}`
    }
    return undefined
  }
}

/** Every text sent to Redis, by the name Redis reports it under: a function's name, or a script's SHA1. */
const known = new Map<string, LuaSource>()

/**
 * Lets `explain` find the file and line of an error in `source`, which Redis runs as `name` (a function's name,
 * or a script's SHA1).
 *
 * @example
 * ```ts
 * remember(call.sha, source)
 * ```
 */
export const remember = (name: string, source: LuaSource): void => {
  known.set(name, source)
}

/** "script: <name>, on @user_function:<line>", as Redis 7 ends an error raised in a function or a script. */
const raisedAt = /script: (\S+?),? on @user_(?:function|script):(\d+)/

/** "user_function:<line>:" where a library failed to load, which names no script. */
const loadedAt = /\buser_function:(\d+):/

/**
 * An error message of Redis with the file and line of the Lua it came from, when it names a line of a text
 * `remember`ed (or, for an error that names no script, of `loading`): the message as it is otherwise.
 *
 * @example
 * ```ts
 * explain("ERR user_function:412: attempt to index a nil value script: quotaflow_ab_reserve, on @user_function:412.")
 * // "... on @user_function:412. (lua/reserve.lua:30)"
 * ```
 */
export const explain = (message: string, loading?: LuaSource): string => {
  const raised = raisedAt.exec(message)
  const source = raised !== null ? known.get(raised[1]) : loading
  const line = raised !== null ? raised[2] : loadedAt.exec(message)?.[1]
  const where = line === undefined ? undefined : source?.where(Number(line))
  return where === undefined ? message : `${message} (${where})`
}

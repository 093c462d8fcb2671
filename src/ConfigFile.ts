/**
 * Limiter configurations in files: YAML or JSON, at a path given or in `QUOTAFLOW_CONFIG`, decoded with the
 * same schema as configurations in code, so a bad file fails at start with every problem listed by path.
 * JSON (a `.json` file, or text that begins with `{` or `[`) is read with `JSON.parse`, so a generated file of
 * tens of thousands of buckets loads in about a second; as with `JSON.parse`, a key written twice keeps its
 * last value, where YAML refuses it.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Config, Effect, Either, Option } from "effect"
import { readFileSync } from "node:fs"
import { parse } from "yaml"
import { ConfigurationError } from "./Errors.js"
import * as Quota from "./Quota.js"

/**
 * The environment variable naming the configuration file when no path is given.
 *
 * @since 0.1.0
 */
export const ENV = "QUOTAFLOW_CONFIG"

/**
 * Whether a file is JSON: by its name, or, whatever its name, by its first character. A generated
 * configuration is JSON, and can be megabytes: the YAML parser takes minutes over 10 MB of it (and blocks the
 * event loop meanwhile), `JSON.parse` a fraction of a second.
 */
const isJson = (path: string, text: string): boolean => path.toLowerCase().endsWith(".json") || /^\s*[{[]/.test(text)

/**
 * The value of a file's text: JSON with `JSON.parse`, YAML otherwise. A YAML file may also begin with `{` (a
 * flow mapping such as `{ buckets: {} }` is not JSON), so text that is not JSON is read as YAML unless the
 * file is named `.json`.
 */
const parseText = (path: string, text: string): Either.Either<unknown, ConfigurationError> => {
  if (isJson(path, text)) {
    try {
      // A byte order mark is not JSON, but editors write one (the YAML parser skips it).
      return Either.right(JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text))
    } catch (error) {
      if (path.toLowerCase().endsWith(".json")) {
        return Either.left(new ConfigurationError({ issues: [`${path}: not valid JSON: ${String(error)}`] }))
      }
    }
  }
  try {
    return Either.right(parse(text))
  } catch (error) {
    return Either.left(new ConfigurationError({ issues: [`${path}: not valid YAML or JSON: ${String(error)}`] }))
  }
}

/** Parses a file's text (JSON or YAML) and checks it against the schema. */
const decodeText = (path: string, text: string): Either.Either<unknown, ConfigurationError> =>
  Either.flatMap(parseText(path, text), (raw) => Either.map(Effect.runSync(Effect.either(Quota.decodeSettings(raw))), () => raw))

const noPath = new ConfigurationError({ issues: [`no configuration file: pass a path or set ${ENV}`] })

/**
 * Reads and checks a configuration file with the platform's `FileSystem`; the path defaults to
 * `QUOTAFLOW_CONFIG`. Returns the configuration as written, for `RateLimited.layerFromFile` or
 * `createRateLimiter`.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { ConfigFile } from "quotaflow"
 *
 * const config = ConfigFile.load("quotaflow.yaml").pipe(Effect.provide(NodeFileSystem.layer))
 * ```
 * @since 0.1.0
 */
export const load = (path?: string): Effect.Effect<Quota.LimiterConfig, ConfigurationError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const file = path ?? Option.getOrUndefined(yield* Effect.orDie(Config.option(Config.string(ENV))))
    if (file === undefined) return yield* noPath
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((error) => new ConfigurationError({ issues: [`${file}: cannot be read: ${error.message}`] }))
    )
    return checked(yield* decodeText(file, text))
  })

/**
 * Reads and checks a configuration file synchronously, for plain Node code; throws `ConfigurationError`.
 *
 * @example
 * ```ts
 * import { ConfigFile, createRateLimiter } from "quotaflow"
 *
 * const limiter = createRateLimiter(ConfigFile.readSync("quotaflow.yaml"))
 * ```
 * @since 0.1.0
 */
export const readSync = (path: string | undefined = process.env[ENV]): Quota.LimiterConfig => {
  if (path === undefined) throw noPath
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    throw new ConfigurationError({ issues: [`${path}: cannot be read: ${String(error)}`] })
  }
  const decoded = decodeText(path, text)
  if (Either.isLeft(decoded)) throw decoded.left
  return checked(decoded.right)
}

/** A configuration the schema has accepted: its shape is `LimiterConfig`'s. */
const checked = (raw: unknown): Quota.LimiterConfig => raw as Quota.LimiterConfig

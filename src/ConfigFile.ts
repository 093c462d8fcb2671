/**
 * Limiter configurations in files: YAML or JSON, at a path given or in `QUOTAFLOW_CONFIG`, decoded with the
 * same schema as configurations in code, so a bad file fails at start with every problem listed by path.
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

/** Parses a file's text (YAML, of which JSON is a subset) and checks it against the schema. */
const decodeText = (path: string, text: string): Either.Either<unknown, ConfigurationError> => {
  let raw: unknown
  try {
    raw = parse(text)
  } catch (error) {
    return Either.left(new ConfigurationError({ issues: [`${path}: not valid YAML or JSON: ${String(error)}`] }))
  }
  return Either.map(Effect.runSync(Effect.either(Quota.decodeSettings(raw))), () => raw)
}

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

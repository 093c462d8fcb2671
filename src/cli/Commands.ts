/**
 * The `quotaflow` command line: `quotaflow emulate` serves the provider emulator until interrupted,
 * `quotaflow demo` runs the end-to-end demo. `run` parses the arguments and returns the process's exit code:
 * 0 on success, 2 for a bad command line (unknown flag, bad value), 1 when the work itself fails.
 *
 * @example
 * ```ts
 * import { NodeContext, NodeRuntime } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { run } from "./Commands.js"
 *
 * NodeRuntime.runMain(run(process.argv).pipe(Effect.provide(NodeContext.layer)))
 * ```
 */
import { Command, Options, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Console, Data, Effect, Option } from "effect"
import { readFileSync } from "node:fs"
import { type DemoOptions, runDemo } from "../demo/Demo.js"
import { maxProcs, runMultiProcessDemo } from "../demo/MultiProcess.js"
import { makeProgressView, renderHeader, renderSummary, styleFor } from "../demo/Render.js"
import type { EmulatorConfigInput } from "../emulator/Config.js"
import * as Emulator from "../emulator/Emulator.js"

/**
 * The command line was understood but cannot be run as given (an inconsistent set of flags): exit code 2.
 *
 * @example
 * ```ts
 * new UsageError({ message: "--itpm needs --style anthropic" })
 * ```
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/**
 * The work failed (the server could not listen, the demo could not run): exit code 1.
 *
 * @example
 * ```ts
 * new RunError({ message: "listen EADDRINUSE 127.0.0.1:8787" })
 * ```
 */
export class RunError extends Data.TaggedError("RunError")<{ readonly message: string }> {}

const style = Options.choice("style", ["openai", "anthropic"])
const algo = Options.choice("algo", ["token-bucket", "sliding-window"])
const positiveInteger = (name: string) =>
  Options.integer(name).pipe(
    Options.filterMap((n) => (n > 0 ? Option.some(n) : Option.none()), `--${name} must be a positive integer`)
  )
const nonNegativeNumber = (name: string) =>
  Options.float(name).pipe(
    Options.filterMap((n) => (n >= 0 && Number.isFinite(n) ? Option.some(n) : Option.none()), `--${name} must be a number >= 0`)
  )
const limitOption = (name: string, description: string) =>
  positiveInteger(name).pipe(Options.withDescription(description), Options.optional)

const emulateOptions = {
  port: Options.integer("port").pipe(
    Options.filterMap((n) => (n >= 0 && n <= 65_535 ? Option.some(n) : Option.none()), "--port must be from 0 to 65535"),
    Options.withDefault(8787),
    Options.withDescription("TCP port to listen on; 0 picks a free port (default 8787).")
  ),
  host: Options.text("host").pipe(
    Options.withDefault("127.0.0.1"),
    Options.withDescription("Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).")
  ),
  style: style.pipe(
    Options.withDefault("openai" as const),
    Options.withDescription(
      "Provider to emulate: openai (requests and tokens; prompt + max_tokens charged and kept) or anthropic " +
        "(requests, input and output tokens; output corrected to the tokens generated). Default openai."
    )
  ),
  algo: algo.pipe(
    Options.withDefault("token-bucket" as const),
    Options.withDescription(
      "How quotas count: token-bucket (continuous refill, like both providers) or sliding-window. Default token-bucket."
    )
  ),
  windowMs: positiveInteger("window-ms").pipe(
    Options.withDefault(60_000),
    Options.withDescription("Length of a quota window (the provider's minute) in milliseconds (default 60000).")
  ),
  rpm: limitOption("rpm", "Requests per window; unlimited when left out."),
  tpm: limitOption("tpm", "Tokens (prompt + max_tokens) per window; unlimited when left out."),
  itpm: limitOption("itpm", "Input tokens per window (anthropic style only); unlimited when left out."),
  otpm: limitOption("otpm", "Output tokens per window (anthropic style only); unlimited when left out."),
  noLimitHeaders: Options.boolean("no-limit-headers").pipe(
    Options.withDescription("Leave out the rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*, retry-after).")
  ),
  latencyBaseMs: nonNegativeNumber("latency-base-ms").pipe(
    Options.withDefault(0),
    Options.withDescription("Time before the first token of each response, in milliseconds (default 0).")
  ),
  latencyPerTokenMs: nonNegativeNumber("latency-per-token-ms").pipe(
    Options.withDefault(0),
    Options.withDescription("Time per generated token, in milliseconds (default 0).")
  )
}

type EmulateFlags = Command.Command.ParseConfig<typeof emulateOptions>

/**
 * The emulator configuration the `emulate` flags describe.
 *
 * @example
 * ```ts
 * emulatorConfigFromFlags({ style: "openai", algo: "token-bucket", windowMs: 60_000, rpm: Option.some(500), ... })
 * // { style: "openai", algorithm: "token-bucket", windowMs: 60000, limits: { requests: 500 }, ... }
 * ```
 */
export const emulatorConfigFromFlags = (flags: EmulateFlags): Effect.Effect<EmulatorConfigInput, UsageError> =>
  Effect.gen(function*() {
    if (flags.style === "openai" && (Option.isSome(flags.itpm) || Option.isSome(flags.otpm))) {
      return yield* new UsageError({ message: "--itpm and --otpm need --style anthropic (OpenAI limits requests and tokens)" })
    }
    const limits: { requests?: number; tokens?: number; input_tokens?: number; output_tokens?: number } = {}
    if (Option.isSome(flags.rpm)) limits.requests = flags.rpm.value
    if (Option.isSome(flags.tpm)) limits.tokens = flags.tpm.value
    if (Option.isSome(flags.itpm)) limits.input_tokens = flags.itpm.value
    if (Option.isSome(flags.otpm)) limits.output_tokens = flags.otpm.value
    return {
      style: flags.style,
      algorithm: flags.algo,
      windowMs: flags.windowMs,
      limits,
      limitHeaders: !flags.noLimitHeaders,
      latency: { baseMs: flags.latencyBaseMs, perTokenMs: flags.latencyPerTokenMs }
    }
  })

const describeLimits = (limits: Readonly<Record<string, unknown>>, windowMs: number): string => {
  const parts = Object.entries(limits).flatMap(([metric, limit]) =>
    typeof limit === "number" ? [`${limit.toLocaleString("en-US")} ${metric.replace("_", " ")}`] : []
  )
  const window = windowMs % 1000 === 0 ? `${windowMs / 1000} s` : `${windowMs} ms`
  return parts.length === 0 ? "nothing limited" : `${parts.join(", ")} per ${window}`
}

const emulate = Command.make("emulate", emulateOptions, (flags) =>
  Effect.gen(function*() {
    const config = yield* emulatorConfigFromFlags(flags)
    const emulator = yield* Emulator.serve(config, { port: flags.port, host: flags.host }).pipe(
      Effect.catchTags({
        InvalidConfig: (e) => new UsageError({ message: e.message }),
        ServeError: (e) =>
          new RunError({
            message: `could not listen on ${flags.host}:${flags.port}: ${e.cause instanceof Error ? e.cause.message : String(e.cause)}`
          })
      })
    )
    const { config: c } = emulator
    yield* Console.log(`quotaflow emulator listening on ${emulator.url}`)
    yield* Console.log(`  style      ${c.style}, ${c.algorithm}; limits: ${describeLimits(c.limits, c.windowMs)}`)
    yield* Console.log(`  routes     POST /v1/chat/completions, POST /v1/messages, GET /stats, POST /reset`)
    yield* Console.log(`  Press Ctrl-C to stop.`)
    return yield* Effect.never.pipe(Effect.onInterrupt(() => Console.log("quotaflow emulator stopped")))
  }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Serve a rate-limited LLM provider emulator (OpenAI or Anthropic) until Ctrl-C."
  )
)

const demoOptions = {
  style: style.pipe(
    Options.withDefault("anthropic" as const),
    Options.withDescription(
      "Provider style: anthropic (requests, input and output tokens; output settled to the tokens generated) or " +
        "openai (requests and tokens; prompt + max_tokens charged and kept). Default anthropic."
    )
  ),
  algo: algo.pipe(
    Options.withDefault("token-bucket" as const),
    Options.withDescription("How the quotas count, on both sides: token-bucket or sliding-window. Default token-bucket.")
  ),
  calls: positiveInteger("calls").pipe(
    Options.withDefault(300),
    Options.withDescription("Number of chat calls to push through the limiter (default 300).")
  ),
  windowMs: positiveInteger("window-ms").pipe(
    Options.withDefault(6_000),
    Options.withDescription("Length of the emulated minute in milliseconds; limits apply per window (default 6000).")
  ),
  seed: Options.integer("seed").pipe(
    Options.withDefault(1),
    Options.withDescription("Seed of the workload (prompt sizes, max_tokens, tokens generated); default 1.")
  ),
  skewMs: Options.integer("skew-ms").pipe(
    Options.filterMap((n) => (n >= 0 ? Option.some(n) : Option.none()), "--skew-ms must be an integer >= 0"),
    Options.withDescription(
      "The limiter's skew: how much later than others a call may reach the emulator, in milliseconds " +
        "(calls sent in a burst arrive spread out). Default 200 for token-bucket, 300 for sliding-window; 0 to see what happens without."
    ),
    Options.optional
  ),
  procs: positiveInteger("procs").pipe(
    Options.withDefault(1),
    Options.withDescription(
      `Number of worker processes sharing one quota through Redis, each sending its share of the workload (default 1, at most ${maxProcs}). ` +
        "Above 1 without --redis, a throwaway redis-server is started on a free loopback port and stopped at the end (needs redis-server installed)."
    )
  ),
  redis: Options.text("redis").pipe(
    Options.withDescription(
      "Keep the limiter's state in the Redis at this URL (redis://[user:password@]host:port[/db] or rediss://...) instead of in memory; " +
        "each run uses a namespace of its own. With --procs 1, runs the single-process demo on the Redis backend."
    ),
    Options.optional
  )
}

/** The `--redis` URL, if it is one. */
const redisUrlOf = (text: string): string | undefined => {
  try {
    const url = new URL(text)
    return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "" ? text : undefined
  } catch {
    return undefined
  }
}

const demo = Command.make("demo", demoOptions, (flags) =>
  Effect.gen(function*() {
    const redisUrl = Option.isSome(flags.redis) ? redisUrlOf(flags.redis.value) : undefined
    if (Option.isSome(flags.redis) && redisUrl === undefined) {
      return yield* new UsageError({ message: `--redis must be a redis:// or rediss:// URL with a host, got "${flags.redis.value}"` })
    }
    if (flags.procs > maxProcs) return yield* new UsageError({ message: `--procs must be at most ${maxProcs}, got ${flags.procs}` })
    if (flags.procs > flags.calls) {
      return yield* new UsageError({ message: `--procs (${flags.procs}) must be at most --calls (${flags.calls}): every process needs a call` })
    }
    const out = process.stdout
    const textStyle = styleFor(out)
    const view = makeProgressView(out, { style: textStyle })
    const options: DemoOptions = {
      style: flags.style,
      algorithm: flags.algo,
      calls: flags.calls,
      windowMs: flags.windowMs,
      seed: flags.seed,
      ...(Option.isSome(flags.skewMs) ? { skewMs: flags.skewMs.value } : {}),
      onStart: (info) => Effect.sync(() => out.write(renderHeader(info, textStyle))),
      onProgress: view.update
    }
    const running = flags.procs > 1
      ? runMultiProcessDemo({ ...options, procs: flags.procs, ...(redisUrl === undefined ? {} : { redisUrl }) })
      : runDemo(redisUrl === undefined ? options : { ...options, redis: { url: redisUrl } })
    const summary = yield* running.pipe(
      Effect.ensuring(view.finish),
      Effect.onInterrupt(() => Console.log("\n  Interrupted.")),
      Effect.mapError((e) => (e.reason === "invalid-options" ? new UsageError({ message: e.message }) : new RunError({ message: e.message })))
    )
    yield* Effect.sync(() => out.write(renderSummary(summary, textStyle)))
  })
).pipe(
  Command.withDescription(
    "Push a few hundred chat calls through quotaflow to an in-process emulator and report how close to the limits it ran " +
      "(in one process on the memory backend, or with --procs and --redis in several processes sharing one quota through Redis)."
  )
)

/**
 * The root command with its subcommands.
 *
 * @example
 * ```ts
 * Command.getNames(quotaflow) // HashSet { "quotaflow" }
 * ```
 */
export const quotaflow = Command.make("quotaflow").pipe(
  Command.withDescription("Rate limiting for LLM API calls: a provider emulator and an end-to-end demo."),
  Command.withSubcommands([emulate, demo])
)

const packageVersion = (): string => {
  try {
    const json: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
    if (typeof json === "object" && json !== null && "version" in json && typeof json.version === "string") return json.version
  } catch {
    // Fall through to the unknown version.
  }
  return "0.0.0"
}

const helpCommand = (argv: ReadonlyArray<string>): string => {
  const subcommand = argv.slice(2).find((arg) => arg === "emulate" || arg === "demo")
  return subcommand === undefined ? "quotaflow --help" : `quotaflow ${subcommand} --help`
}

/**
 * Runs the command line `argv` (as in `process.argv`: runtime, script, then arguments) and returns the exit
 * code: 0 on success, 2 for a bad command line (its message is already printed), 1 when the work failed.
 *
 * @example
 * ```ts
 * const code = yield* run(["node", "quotaflow", "demo", "--calls", "60"])
 * ```
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(quotaflow, { name: "quotaflow", version: packageVersion() })(argv).pipe(
    Effect.as(0),
    // The parser has printed what was wrong; point at the right help.
    Effect.catchIf(ValidationError.isValidationError, () => Effect.as(Console.error(`Run "${helpCommand(argv)}" for the options.`), 2)),
    Effect.catchTags({
      UsageError: (e) => Effect.as(Console.error(`quotaflow: ${e.message}`), 2),
      RunError: (e) => Effect.as(Console.error(`quotaflow: ${e.message}`), 1)
    })
  )

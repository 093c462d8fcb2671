/**
 * Command-line entry point: starts the emulator and serves until interrupted (Ctrl-C).
 *
 * Usage: `npx tsx src/emulator/main.ts [config-json] [--port N] [--host H]`
 * (the config defaults to `{}`: OpenAI style with nothing limited; the port to 8787).
 *
 * @example
 * // npx tsx src/emulator/main.ts '{"style":"anthropic","windowMs":5000,"limits":{"requests":50,"input_tokens":30000,"output_tokens":8000}}' --port 8787
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { parseConfig } from "./Config.js"
import { serve } from "./Emulator.js"

const args = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const configText = args.find((arg, i) => !arg.startsWith("--") && (i === 0 || !args[i - 1]!.startsWith("--"))) ?? "{}"

const program = Effect.gen(function*() {
  const config = yield* parseConfig(configText)
  const port = Number(option("--port") ?? 8787)
  const emulator = yield* serve(config, { port, host: option("--host") ?? "127.0.0.1" })
  yield* Effect.log(
    `provider emulator (${emulator.config.style} style, ${emulator.config.algorithm}) listening on ${emulator.url}`
  )
  return yield* Effect.never
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)

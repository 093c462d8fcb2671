#!/usr/bin/env node
/**
 * The `quotaflow` executable: `quotaflow emulate` and `quotaflow demo` (see `Commands.ts`).
 * Exit codes: 0 on success (and when stopped with Ctrl-C), 2 for a bad command line, 1 when the work failed.
 *
 * @example
 * ```sh
 * npx tsx src/cli/main.ts demo --style openai --calls 200
 * npx tsx src/cli/main.ts emulate --style anthropic --rpm 50 --itpm 30000 --otpm 8000 --port 8787
 * ```
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit } from "effect"
import { run } from "./Commands.js"

let code = 0
const program = run(process.argv).pipe(
  Effect.tap((result) => {
    code = result
  }),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? code : Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
})

/**
 * An emulator on a free loopback port for the length of `use`, for tests that talk to it over real HTTP.
 */
import { Effect, Exit, Scope } from "effect"
import * as Emulator from "../../src/emulator/Emulator.js"

export const withEmulator = async <A>(
  config: Emulator.EmulatorConfigInput,
  use: (emulator: Emulator.RunningEmulator) => Promise<A>
): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  try {
    return await use(await Effect.runPromise(Scope.extend(Emulator.serve(config, { port: 0 }), scope)))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

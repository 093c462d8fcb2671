/**
 * An emulator on a free loopback port for the length of `use`, for tests that talk to it over real HTTP.
 */
import { Effect, Exit, Scope } from "effect"
import type { ChatCall } from "../../src/demo/Workload.js"
import * as Emulator from "../../src/emulator/Emulator.js"
import type { RateLimiter } from "../../src/index.js"

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

/** One OpenAI-style chat request to the emulator: `prompt` tokens in, up to `maxTokens` out (`completion` generated). */
export const chat = (url: string, call: { readonly prompt: number; readonly maxTokens: number; readonly completion?: number }, signal?: AbortSignal) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    ...(signal ? { signal } : {}),
    body: JSON.stringify({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: call.maxTokens,
      x_prompt_tokens: call.prompt,
      ...(call.completion === undefined ? {} : { x_completion_tokens: call.completion })
    })
  })

/**
 * Sends the workload's calls through `limiter` (bucket `gpt-4o`, charged prompt + max_tokens), all at once; each
 * attempt's status and time since the start go to `onAttempt`. The final statuses, and the wall time.
 */
export const runChats = async (
  limiter: RateLimiter,
  url: string,
  calls: ReadonlyArray<ChatCall>,
  onAttempt: (status: number, atMs: number) => void = () => undefined
): Promise<{ readonly statuses: ReadonlyArray<number>; readonly wallMs: number }> => {
  const started = performance.now()
  const statuses = await Promise.all(calls.map((call) =>
    limiter.submit({ bucket: "gpt-4o", usage: { tokens: call.promptTokens + call.maxTokens } }, async (signal) => {
      const response = await chat(url, { prompt: call.promptTokens, maxTokens: call.maxTokens, completion: call.completionTokens }, signal)
      onAttempt(response.status, performance.now() - started)
      return response
    }).then((response) => response.status)
  ))
  return { statuses, wallMs: performance.now() - started }
}

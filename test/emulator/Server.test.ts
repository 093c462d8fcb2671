import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Emulator from "../../src/emulator/Emulator.js"
import { openaiBody, sseData } from "./support.js"

const post = (url: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

describe("Emulator.serve", () => {
  it.live("serves on a free port over a real socket and stops when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const emulator = yield* Emulator.serve({ style: "openai", limits: { requests: 2, tokens: 10_000 } }, { port: 0 })
        .pipe(Scope.extend(scope))
      assert.isAbove(emulator.port, 0)
      assert.strictEqual(emulator.url, `http://127.0.0.1:${emulator.port}`)

      const ok = yield* post(`${emulator.url}/v1/chat/completions`, openaiBody(10, 20, 5))
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.headers.get("content-type"), "application/json")
      assert.strictEqual(ok.headers.get("x-ratelimit-remaining-requests"), "1")
      assert.deepStrictEqual(JSON.parse(ok.text).usage, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 })

      const streamed = yield* post(
        `${emulator.url}/v1/chat/completions`,
        openaiBody(10, 20, 5, { stream: true, stream_options: { include_usage: true } })
      )
      assert.strictEqual(streamed.status, 200)
      assert.strictEqual(streamed.headers.get("content-type"), "text/event-stream")
      assert.strictEqual(sseData(streamed.text).at(-1), "[DONE]")

      const limited = yield* post(`${emulator.url}/v1/chat/completions`, openaiBody(10, 20, 5))
      assert.strictEqual(limited.status, 429)
      assert.isAbove(Number(limited.headers.get("retry-after-ms")), 0)

      const stats = yield* Effect.promise(() => fetch(`${emulator.url}/stats`).then((r) => r.json()))
      assert.deepStrictEqual(stats, yield* emulator.stats)
      assert.strictEqual((yield* emulator.stats).admitted, 2)

      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.either(Effect.tryPromise(() => fetch(`${emulator.url}/stats`)))
      assert.strictEqual(after._tag, "Left")
    }))
})

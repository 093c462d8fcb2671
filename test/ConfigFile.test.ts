import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { ConfigFile, ConfigurationError, createRateLimiter, MemoryBackendLive, RateLimited } from "../src/index.js"

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures")
const good = join(fixtures, "good.yaml")
const bad = join(fixtures, "bad.yaml")

describe("ConfigFile", () => {
  it.effect("a good file configures the limiter", () =>
    Effect.gen(function*() {
      const status = yield* RateLimited.status("claude-sonnet-4.x")
      assert.deepStrictEqual(status.quotas.map((q) => q.limit), [45, 27_000, 7_200])
    }).pipe(
      Effect.provide(RateLimited.layerFromFile(good).pipe(Layer.provide(MemoryBackendLive), Layer.provide(NodeFileSystem.layer)))
    ))

  it.effect("the path comes from QUOTAFLOW_CONFIG when none is given", () =>
    Effect.gen(function*() {
      const config = yield* ConfigFile.load()
      assert.strictEqual(config.provider, "anthropic")
    }).pipe(
      Effect.provide(NodeFileSystem.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["QUOTAFLOW_CONFIG", good]])))
    ))

  it.effect("a bad file fails with every problem listed by path", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ConfigFile.load(bad))
      assert.deepStrictEqual(error.issues, [
        "buckets.gpt-4o.quotas[1].limit: expected a positive integer, got -5",
        "buckets.gpt-4o.burstMultiplier: expected a finite number >= 1, got 0.5",
        "provider: expected a known provider (openai, azure-openai, anthropic, bedrock, gemini, vertex, groq, together, mistral, openrouter, deepseek, venice) or a Provider, got \"openia\""
      ])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("a missing file and malformed YAML are configuration errors too", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(ConfigFile.load(join(fixtures, "nope.yaml")))
      assert.include(missing.issues[0], "nope.yaml: cannot be read")
      const malformed = yield* Effect.flip(ConfigFile.load(join(fixtures, "malformed.yaml")))
      assert.include(malformed.issues[0], "malformed.yaml: not valid YAML or JSON")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it("readSync serves plain Node code", async () => {
    const limiter = createRateLimiter(ConfigFile.readSync(good))
    assert.strictEqual((await limiter.status("claude-sonnet-4.x")).quotas.length, 3)
    await limiter.close()
    try {
      ConfigFile.readSync(bad)
      assert.fail("a bad file must throw")
    } catch (error) {
      assert.instanceOf(error, ConfigurationError)
    }
  })
})

import { NodeFileSystem } from "@effect/platform-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import os from "node:os"
import { dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
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

describe("ConfigFile with JSON", () => {
  const dir = mkdtempSync(join(os.tmpdir(), "quotaflow-config-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const write = (name: string, text: string) => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }
  const thrown = (f: () => unknown): unknown => {
    try {
      f()
    } catch (error) {
      return error
    }
    return undefined
  }
  const bucket = (limit: number) => ({ quotas: [{ metric: "requests", limit, window: "1 minute" }] })

  it("a .json file that is not JSON says so, with JSON's own message", () => {
    // A trailing comma: YAML takes it, JSON does not.
    const path = write("broken.json", `{ "buckets": { "a": ${JSON.stringify(bucket(5))}, } }`)
    const error = thrown(() => ConfigFile.readSync(path))
    assert.instanceOf(error, ConfigurationError)
    assert.lengthOf(error.issues, 1)
    assert.match(error.issues[0], /broken\.json: not valid JSON: SyntaxError: .*JSON/)
  })

  it("JSON is read as JSON, whatever the file's name: a key written twice keeps its last value", () => {
    // The YAML parser refuses a repeated key; JSON.parse keeps the last one, and so does a JSON file here.
    const text = `{ "buckets": { "a": ${JSON.stringify(bucket(5))}, "a": ${JSON.stringify(bucket(7))} } }`
    for (const path of [write("twice.json", text), write("twice.conf", `\n  ${text}`), write("bom.json", `\uFEFF${text}`)]) {
      assert.deepStrictEqual(ConfigFile.readSync(path).buckets?.a?.quotas[0].limit, 7)
    }
  })

  it.effect("YAML that begins with a brace is still YAML", () =>
    Effect.gen(function*() {
      const path = write("flow.yaml", "{ provider: anthropic, buckets: { a: { quotas: [{ metric: requests, limit: 5, window: 1 minute }] } } }\n")
      assert.strictEqual((yield* ConfigFile.load(path)).provider, "anthropic")
      assert.strictEqual(ConfigFile.readSync(path).provider, "anthropic")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it("a generated file of 50,000 buckets (11 MB) loads in seconds, not minutes", { timeout: 60_000 }, async () => {
    const buckets: Record<string, unknown> = {}
    for (let i = 0; i < 50_000; i++) {
      buckets[`tenant-${i}/model-${i % 7}`] = {
        quotas: [
          { metric: "requests", limit: 500 + (i % 100), window: "1 minute" },
          { metric: "tokens", limit: 30_000 + i, window: 60_000, algorithm: "sliding-window" }
        ],
        ...(i % 2 === 0 ? { safetyRatio: 0.9 } : { maxQueue: 10_000 })
      }
    }
    const path = write("large.json", JSON.stringify({ provider: "openai", buckets }))
    // Each load takes about a second here on two busy cores, and took about a minute when JSON went through
    // the YAML parser: the bound is ten times the former, so that only the latter fails it.
    const start = performance.now()
    const config = ConfigFile.readSync(path)
    const loaded = await Effect.runPromise(ConfigFile.load(path).pipe(Effect.provide(NodeFileSystem.layer)))
    const seconds = (performance.now() - start) / 1000
    assert.strictEqual(Object.keys(config.buckets ?? {}).length, 50_000)
    assert.strictEqual(Object.keys(loaded.buckets ?? {}).length, 50_000)
    assert.isBelow(seconds, 20)
  })
})

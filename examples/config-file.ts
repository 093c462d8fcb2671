/**
 * Limits in a file: the same YAML read by plain Node code (`ConfigFile.readSync`, for `createRateLimiter`) and
 * by an Effect program (`RateLimited.layerFromFile`, with the platform's file system). A bad file fails at
 * start with every problem named by its path.
 *
 * Run: npx tsx examples/config-file.ts
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigFile, ConfigurationError, createRateLimiter, MemoryBackendLive, RateLimited } from "quotaflow"

const directory = mkdtempSync(join(tmpdir(), "quotaflow-example-"))
const path = join(directory, "quotaflow.yaml")
writeFileSync(path, `
buckets:
  gpt-4o:
    safetyRatio: 0.9
    quotas:
      - { metric: requests, limit: 500, window: 1 minute }
      - { metric: tokens, limit: 30000, window: 1 minute }
`)
const badPath = join(directory, "bad.yaml")
writeFileSync(badPath, `
buckets:
  gpt-4o:
    quotas:
      - { metric: requests, limit: -5, window: 1 minute }
`)

try {
  // Plain Node.
  const limiter = createRateLimiter(ConfigFile.readSync(path))
  const answer = await limiter.submit({ bucket: "gpt-4o", usage: { tokens: 1_000 } }, async () => "hi")
  const fromPromise = await limiter.status("gpt-4o")
  await limiter.close()

  // Effect.
  const LimiterLive = RateLimited.layerFromFile(path).pipe(Layer.provide(Layer.merge(MemoryBackendLive, NodeFileSystem.layer)))
  const fromEffect = await Effect.runPromise(RateLimited.status("gpt-4o").pipe(Effect.provide(LimiterLive)))

  // A bad file.
  const refusal = (() => {
    try {
      ConfigFile.readSync(badPath)
      return undefined
    } catch (error) {
      return error
    }
  })()

  console.log(`limits: ${fromPromise.quotas.map((q) => `${q.limit} ${q.metric}`).join(", ")} (the file's, at its safety ratio of 0.9)`)
  console.log(`bad file: ${refusal instanceof ConfigurationError ? refusal.message : "accepted"}`)
  if (answer !== "hi") throw new Error("expected the call's answer")
  for (const status of [fromPromise, fromEffect]) {
    const limits = status.quotas.map((q) => `${q.limit} ${q.metric}`).join(", ")
    if (limits !== "450 requests, 27000 tokens") throw new Error(`expected the file's two quotas at 90%, got ${limits}`)
  }
  if (!(refusal instanceof ConfigurationError) || !refusal.message.includes("limit")) throw new Error("expected the bad limit named")
} finally {
  rmSync(directory, { recursive: true, force: true })
}

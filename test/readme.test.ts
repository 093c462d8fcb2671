import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RedisServer } from "./support/redisServer.js"
import { onSources } from "./support/sources.js"

// Every `ts` block of the README is a complete program: it runs here against the sources, and throws if its
// result is not what the README says.
const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const out = join(root, "test", ".readme")
const blocks = [...readFileSync(join(root, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])

describe("README examples", () => {
  // The Redis example reads REDIS_URL: a server of the suite's own.
  let redis: RedisServer
  beforeAll(async () => {
    redis = await RedisServer.start()
    process.env.REDIS_URL = redis.url
  })
  afterAll(async () => {
    rmSync(out, { recursive: true, force: true })
    await redis.stop()
  })

  it("has examples", () => expect(blocks.length).toBeGreaterThanOrEqual(4))

  blocks.forEach((code, i) => {
    it(`example ${i + 1} runs`, async () => {
      mkdirSync(out, { recursive: true })
      const file = join(out, `example-${i + 1}.ts`)
      writeFileSync(file, onSources(code, out) + "\nexport {}\n")
      await import(file)
    })
  })
})

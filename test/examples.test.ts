/**
 * Every file of examples/ is a program that throws when its result is not what it says: each runs here as a
 * user would run it, with tsx in a process of its own, "quotaflow" resolving to the sources (tsconfig's paths).
 */
import { execFile } from "node:child_process"
import { readdirSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RedisServer } from "./support/redisServer.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const examples = readdirSync(join(root, "examples")).filter((file) => file.endsWith(".ts")).sort()
const tsx = createRequire(import.meta.url).resolve("tsx")
const run = promisify(execFile)

describe("examples", () => {
  // The Redis example reads REDIS_URL: a server of the suite's own.
  let redis: RedisServer
  beforeAll(async () => {
    redis = await RedisServer.start()
  })
  afterAll(() => redis.stop())

  it("has examples", () => expect(examples.length).toBeGreaterThanOrEqual(6))

  it.each(examples)("%s runs", async (file) => {
    await run(process.execPath, ["--import", tsx, join("examples", file)], {
      cwd: root,
      env: { ...process.env, REDIS_URL: redis.url }
    })
  }, 60_000)
})

import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { expect, it } from "vitest"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

// The test command builds first; this imports the built package by its name, through the exports map.
it("the built package exports createRateLimiter, RateLimited and MemoryBackendLive", () => {
  const script = `
    import { createRateLimiter, RateLimited, MemoryBackendLive } from "quotaflow"
    const limiter = createRateLimiter({ buckets: { a: { quotas: [{ metric: "requests", limit: 5, window: "1 second" }] } } })
    const answer = await limiter.submit({ bucket: "a" }, async () => "ok")
    await limiter.close()
    console.log(JSON.stringify([answer, typeof RateLimited.submit, typeof RateLimited.layer, MemoryBackendLive !== undefined]))
  `
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8" })
  expect(JSON.parse(output)).toEqual(["ok", "function", "function", true])
})

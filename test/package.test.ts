/**
 * The built package as a consumer sees it: through its exports map, from a project of its own (a temporary
 * directory whose `node_modules/quotaflow` links to this checkout), each check in a fresh node process so that
 * what one import loads is not hidden by what the test runner loaded already. The test command builds first.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, unknown>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
}

let consumer: string

// A module hook that appends the URL of every module the ES loader loads to LOADED_FILE, synchronously, so the
// list is complete when the import resolves; at exit the CommonJS modules loaded (which in Node 20 do not pass
// through the hook: ioredis, or what `createRequire` loads) are added from the require cache.
const hooks = `
import { appendFileSync } from "node:fs"
let file
export const initialize = (data) => { file = data.file }
export const load = (url, context, next) => {
  appendFileSync(file, url + "\\n")
  return next(url, context)
}
`
const register = `
import { appendFileSync } from "node:fs"
import { createRequire, register } from "node:module"
register(new URL("./hooks.mjs", import.meta.url), { data: { file: process.env.LOADED_FILE } })
process.on("exit", () => appendFileSync(process.env.LOADED_FILE, Object.keys(createRequire(import.meta.url).cache).join("\\n")))
`

const run = (file: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}): string =>
  execFileSync(process.execPath, [...args, file], { cwd: consumer, encoding: "utf8", env: { ...process.env, ...env } })

const script = (name: string, code: string): string => {
  const file = join(consumer, name)
  writeFileSync(file, code)
  return file
}

/** The paths or URLs of the modules loaded while `code` ran, ES and CommonJS. */
const modulesLoadedBy = (name: string, code: string): ReadonlyArray<string> => {
  const list = join(consumer, `${name}.loaded`)
  writeFileSync(list, "")
  run(script(name, code), ["--import", "./register.mjs"], { LOADED_FILE: list })
  return readFileSync(list, "utf8").split("\n").filter((line) => line.length > 0)
}

/** The packages (`effect`, `@effect/platform-node`) that modules belong to. */
const packagesOf = (modules: ReadonlyArray<string>): ReadonlyArray<string> =>
  [...new Set(modules.flatMap((module) => module.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1] ?? []))].sort()

beforeAll(() => {
  consumer = mkdtempSync(join(tmpdir(), "quotaflow-consumer-"))
  mkdirSync(join(consumer, "node_modules"))
  symlinkSync(root, join(consumer, "node_modules", "quotaflow"), "dir")
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }))
  writeFileSync(join(consumer, "hooks.mjs"), hooks)
  writeFileSync(join(consumer, "register.mjs"), register)
})

afterAll(() => rmSync(consumer, { recursive: true, force: true }))

describe("the built package", () => {
  it("exports createRateLimiter, RateLimited and MemoryBackendLive", () => {
    const file = script("main.mjs", `
      import { createRateLimiter, RateLimited, MemoryBackendLive } from "quotaflow"
      const limiter = createRateLimiter({ buckets: { a: { quotas: [{ metric: "requests", limit: 5, window: "1 second" }] } } })
      const answer = await limiter.submit({ bucket: "a" }, async () => "ok")
      await limiter.close()
      console.log(JSON.stringify([answer, typeof RateLimited.submit, typeof RateLimited.layer, MemoryBackendLive !== undefined]))
    `)
    expect(JSON.parse(run(file))).toEqual(["ok", "function", "function", true])
  })

  it("can be required from CommonJS", () => {
    // require(esm), unflagged since Node 20.19, works only for a module graph without top-level await: this
    // fails if one creeps in, as well as without an exports condition that `require` matches.
    const file = script("main.cjs", `
      const { createRateLimiter, RateLimited } = require("quotaflow")
      const { Emulator } = require("quotaflow/emulator")
      const limiter = createRateLimiter({ buckets: { a: { quotas: [{ metric: "requests", limit: 5, window: "1 second" }] } } })
      limiter.submit({ bucket: "a" }, async () => "ok").then(async (answer) => {
        await limiter.close()
        console.log(JSON.stringify([answer, typeof RateLimited.submit, typeof Emulator.serve]))
      })
    `)
    expect(JSON.parse(run(file))).toEqual(["ok", "function", "function"])
  })

  it("loads no HTTP server and no tokenizer table on import", () => {
    const loaded = packagesOf(modulesLoadedBy("light.mjs", `
      await import("quotaflow")
      if (process.moduleLoadList.includes("NativeModule http")) throw new Error("node:http was loaded")
    `))
    expect(loaded).toContain("effect")
    for (const heavy of ["@effect/platform-node", "@effect/platform-node-shared", "@effect/cluster", "@effect/rpc", "@effect/sql", "gpt-tokenizer"]) {
      expect(loaded).not.toContain(heavy)
    }
  })

  it("loads one OpenAI rank table when it first counts in its encoding", () => {
    const modules = modulesLoadedBy("count.mjs", `
      import { Provider } from "quotaflow"
      const count = Provider.OpenAI.countTokens("Hello, world!", "gpt-4o")
      if (count !== 4) throw new Error("counted " + count)
    `)
    expect(modules.some((module) => module.includes("gpt-tokenizer/") && module.includes("bpeRanks/o200k_base"))).toBe(true)
    expect(modules.some((module) => module.includes("bpeRanks/cl100k_base"))).toBe(false)
  })

  it("has the emulator at quotaflow/emulator, and not in the main entry", () => {
    const file = script("emulator.mjs", `
      import * as Main from "quotaflow"
      import { Emulator } from "quotaflow/emulator"
      console.log(JSON.stringify([typeof Emulator.serve, typeof Emulator.make, "Emulator" in Main]))
    `)
    expect(JSON.parse(run(file))).toEqual(["function", "function", false])
    expect(packagesOf(modulesLoadedBy("emulator-loads.mjs", `await import("quotaflow/emulator")`))).toContain("@effect/platform-node")
  })

  it("has the HttpClient middleware at quotaflow/HttpClient, without platform-node, and not in the main entry", () => {
    const isHttpClient = (module: string) => module.includes("@effect/platform/dist/esm/HttpClient.js")
    const modules = modulesLoadedBy("http-client.mjs", `
      import * as LimitedHttpClient from "quotaflow/HttpClient"
      if (typeof LimitedHttpClient.layer !== "function" || typeof LimitedHttpClient.limit !== "function") throw new Error("missing")
    `)
    expect(modules.some(isHttpClient)).toBe(true)
    expect(packagesOf(modules)).not.toContain("@effect/platform-node")
    expect(modulesLoadedBy("main-no-http-client.mjs", `await import("quotaflow")`).some(isHttpClient)).toBe(false)
  })

  it("exports every public module at its own path, and no internal one", () => {
    const paths = Object.entries(manifest.exports)
      .filter(([path, target]) => target !== null && !path.includes("*") && path !== "./package.json")
      .map(([path]) => `quotaflow${path.slice(1)}`)
    expect(paths).toEqual(expect.arrayContaining(["quotaflow", "quotaflow/emulator", "quotaflow/RateLimited", "quotaflow/Backend/Memory"]))
    const file = script("paths.mjs", `
      const loaded = []
      for (const path of ${JSON.stringify(paths)}) loaded.push(Object.keys(await import(path)).length > 0)
      const refused = []
      for (const path of ["quotaflow/internal/limiter", "quotaflow/internal/provider/tokens", "quotaflow/cli/main", "quotaflow/dist/index.js"]) {
        await import(path).then(() => refused.push("imported"), (error) => refused.push(error.code))
      }
      console.log(JSON.stringify({ loaded, refused }))
    `)
    expect(JSON.parse(run(file))).toEqual({
      loaded: paths.map(() => true),
      refused: Array(4).fill("ERR_PACKAGE_PATH_NOT_EXPORTED")
    })
  })

  it("takes effect and @effect/* from the program (peers), not a copy of its own", () => {
    // A second copy of effect (Effect 4 in the program, 3 here) would make its layers unusable by the program.
    const own = Object.keys(manifest.dependencies ?? {}).filter((name) => name === "effect" || name.startsWith("@effect/"))
    expect(own).toEqual([])
    expect(manifest.peerDependencies?.effect).toMatch(/^\^3\./)
    expect(manifest.peerDependencies?.["@effect/platform"]).toBeDefined()
    for (const peer of Object.keys(manifest.peerDependencies ?? {})) expect(manifest.devDependencies?.[peer]).toBeDefined()
  })
})

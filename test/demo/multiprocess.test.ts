import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DemoSummary } from "../../src/demo/Demo.js"
import { runMultiProcessDemo, shares } from "../../src/demo/MultiProcess.js"
import { findRedisServer } from "../../src/demo/RedisServer.js"
import { makeWorkload } from "../../src/demo/Workload.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** The processes whose parent is this one (workers, redis-server), read from /proc. */
const children = (): ReadonlyArray<number> => {
  const found: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      // pid (comm) state ppid ...: the command may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === process.pid) found.push(Number(entry))
    } catch {
      // Gone meanwhile.
    }
  }
  return found
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    const state = readFileSync(`/proc/${pid}/stat`, "utf8")
    return state.slice(state.lastIndexOf(")") + 2, state.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

const stripAnsi = (text: string): string => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")

const cli = (...args: ReadonlyArray<string>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(join(root, "node_modules", ".bin", "tsx"), ["src/cli/main.ts", ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr) }))
  })

// The single-process test's scenario (2 s "minute", the default skew), with more calls so that the binding quota
// dominates the fixed costs of starting several processes on a small machine.
const windowMs = 2_000
const calls = 90
const limits = { requests: 60, input_tokens: 16_000, output_tokens: 4_000 }

describe("runMultiProcessDemo", () => {
  it("deals every call out once, round robin", () => {
    const workload = makeWorkload(10, 1)
    const dealt = shares(workload, 3)
    assert.deepStrictEqual(dealt.map((share) => share.length), [4, 3, 3])
    assert.deepStrictEqual(dealt.flat().map((call) => call.id).sort((a, b) => a - b), workload.map((call) => call.id))
  })

  it.live.skipIf(findRedisServer() === undefined)(
    "3 processes on a throwaway redis-server: no 429s, no violations, above 90%, nothing left running",
    () =>
      Effect.gen(function*() {
        const seen = new Set<number>()
        const look = () => {
          for (const pid of children()) seen.add(pid)
        }
        const started = Date.now()
        const summary: DemoSummary = yield* runMultiProcessDemo({
          procs: 3,
          style: "anthropic",
          calls,
          windowMs,
          seed: 1,
          limits,
          onProgress: () => Effect.sync(look)
        }).pipe(Effect.ensuring(Effect.sync(look)))
        const elapsed = Date.now() - started
        console.log(
          `multi-process demo: 3 processes, ${calls} calls, wall ${summary.wallMs} ms, minimum ${summary.minimumMs.toFixed(0)} ms, ` +
            `efficiency ${((summary.efficiency ?? 0) * 100).toFixed(1)} %, whole run ${elapsed} ms`
        )

        assert.strictEqual(summary.backend.kind, "redis")
        assert.strictEqual(summary.backend.processes, 3)
        assert.strictEqual(summary.ok, calls)
        assert.strictEqual(summary.failed, 0)
        assert.strictEqual(summary.rejected429.emulator, 0)
        assert.strictEqual(summary.rejected429.responses, 0)
        assert.strictEqual(summary.violations, 0)
        for (const quota of summary.quotas) assert.isAtMost(quota.peak, quota.limit, `peak of ${quota.metric}`)
        assert.strictEqual(summary.bindingMetric, "output_tokens")
        const generated = makeWorkload(calls, 1).reduce((sum, call) => sum + call.completionTokens, 0)
        assert.strictEqual(summary.quotas.find((q) => q.metric === "output_tokens")?.total, generated)
        assert.isAbove(summary.efficiency ?? 0, 0.9)
        assert.isAtMost(summary.efficiency ?? 1, 1)

        // Three workers and the redis-server were seen, and none of them is left.
        assert.isAtLeast(seen.size, 4)
        assert.deepStrictEqual([...seen].filter(alive), [])
        assert.deepStrictEqual(children().filter(alive), [])
      }),
    40_000
  )

  it.live("a Redis nobody listens on fails the run, and no worker is left", () =>
    Effect.gen(function*() {
      const seen = new Set<number>()
      const error = yield* Effect.flip(
        runMultiProcessDemo({
          procs: 2,
          calls: 10,
          windowMs,
          redisUrl: "redis://127.0.0.1:1",
          onStart: () =>
            Effect.sync(() => {
              // Workers are forked right after the start: look while they connect.
              const timer = setInterval(() => {
                for (const pid of children()) seen.add(pid)
              }, 50)
              setTimeout(() => clearInterval(timer), 3_000)
            })
        })
      )
      assert.strictEqual(error.reason, "failed")
      assert.include(error.message, "worker")
      assert.include(error.message, "Redis")
      assert.deepStrictEqual([...seen].filter(alive), [])
      assert.deepStrictEqual(children().filter(alive), [])
    }), 30_000)

  it.effect("rejects more processes than calls", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(runMultiProcessDemo({ procs: 5, calls: 4, redisUrl: "redis://127.0.0.1:1" }))
      assert.strictEqual(error.reason, "invalid-options")
      assert.include(error.message, "procs (5) must be at most the number of calls (4)")
    }))
})

describe("quotaflow demo --procs / --redis", () => {
  it("--help describes --procs and --redis", async () => {
    const result = await cli("demo", "--help")
    assert.strictEqual(result.code, 0)
    for (const flag of ["--procs", "--redis"]) {
      const entry = result.stdout.split(/\n(?=--[a-z-]+|\(-h, --help\))/).find((part) => part.startsWith(flag)) ?? ""
      const described = entry.split("\n").map((line) => line.trim()).filter((line) =>
        line !== "" && !line.startsWith("--") && !line.startsWith("This setting") &&
        !/^(An integer|A floating|A true or false|A user-defined|One of the following)/.test(line)
      )
      assert.isAbove(described.length, 0, `${flag} has a description`)
    }
    assert.include(result.stdout, "redis-server")
  }, 30_000)

  it("bad combinations exit with code 2", async () => {
    const [tooMany, badUrl, zero] = await Promise.all([
      cli("demo", "--procs", "4", "--calls", "3"),
      cli("demo", "--procs", "2", "--redis", "http://127.0.0.1:6379"),
      cli("demo", "--procs", "0")
    ])
    assert.strictEqual(tooMany.code, 2)
    assert.include(tooMany.stderr, "--procs (4) must be at most --calls (3)")
    assert.strictEqual(badUrl.code, 2)
    assert.include(badUrl.stderr, "--redis must be a redis:// or rediss:// URL")
    assert.strictEqual(zero.code, 2)
    assert.include(zero.stderr, "--procs")
  }, 30_000)
})

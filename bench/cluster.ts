/**
 * "One queue across processes": several processes sharing one provider quota, side by side in one run on one
 * host, against the provider emulator with the emulator's limits equal to the limiter's:
 *
 * - quotaflow, BENCH_PROCS (4) processes x 64/BENCH_PROCS (16) callers, Redis backend, one bucket;
 * - bottleneck in clustering mode (`datastore: "ioredis"`, the same Redis), the same processes and callers;
 * - quotaflow, 1 process x 64 callers, memory backend (the single-process reference).
 *
 *   npx tsx bench/cluster.ts
 *   BENCH_SCENARIOS=a,c BENCH_CALLS=300 BENCH_PROCS=2 BENCH_OUT=/tmp/cluster.json npx tsx bench/cluster.ts
 *
 * Starts its own redis-server on a free loopback port, and a fresh emulator (in this process) for every run of
 * a contender; every contender process is a forked worker (`bench/clusterWorker.ts`) that reports each call
 * (submitted, admitted, finished, its prompt and max_tokens, its status) over IPC; the statistics are computed
 * here.
 *
 * Workload: BENCH_CALLS (600) OpenAI-style chat calls from the demo's seeded generator (`src/demo/Workload.ts`,
 * seed 1): prompts log-uniform over 100-3,000 tokens, max_tokens 256/512/768/1,024, 15-95% of it generated;
 * every contender gets the same calls, dealt round robin to its processes. Each caller takes the next call of
 * its process's share once its previous call has ended (a closed loop: 64 callers in all, so the quota binds
 * the whole run). A 429 is submitted through the limiter again, without a pause of its own, up to 3 attempts.
 *
 * Scenarios (BENCH_SCENARIOS, comma separated, default all), a 6 s "minute" (the demo's window) with the
 * emulator's model latency at 30 ms + 1 ms per generated token:
 *
 * - a: OpenAI, token bucket, 300 requests + 180,000 tokens per window, a call charged prompt + max_tokens
 *      and keeping that charge; tokens bind (about 24 s for 600 calls);
 * - b: the same quotas as sliding windows;
 * - c: Anthropic, token bucket, 300 requests + 150,000 input tokens + 40,000 output tokens per window; a
 *      call is charged its prompt and its max_tokens, and the output is corrected to the tokens generated when
 *      it ends (quotaflow's `actualUsage`); output binds (about 23 s).
 *
 * The quotaflow limiter is configured with the emulator's quotas only, as a user writes them: no `skew`, no
 * `provider`, no `safetyRatio`, default `pollInterval` and every other setting at its default.
 *
 * Bottleneck has one reservoir per limiter and one weight per job (a chain passes the same weight on), so it is
 * given the binding quota only (tokens for a and b, output tokens for c; the others are set to need at most
 * 65% of the run, so they have slack): weight = the call's charge on that quota, and
 * - token bucket (a, c): `reservoir: limit`, plus `limit / 40` every `window / 40` up to `limit`
 *   (`reservoirIncrease*`: a token bucket refilled in 40 steps per window);
 * - sliding window (b): `reservoir: limit` reset every window (`reservoirRefresh*`, the usual "N per minute"
 *   setup; bottleneck has no sliding window, and a fixed window lets up to twice the limit through around its
 *   edges);
 * - output correction (c): `incrementReservoir(max_tokens - generated)` after each call (bottleneck does not
 *   cap it at the maximum);
 * every other bottleneck setting at its default (heartbeat 5 s in clustering mode, `maxConcurrent: null`).
 *
 * Reported per scenario and contender:
 *
 * - efficiency: the theoretical minimum wall time at the binding limit divided by the actual wall time. The
 *   minimum is the largest over the quotas of what pushing the workload's final charges (requests; tokens =
 *   prompt + max_tokens; input = prompt; output = tokens generated) through that quota takes from an unused
 *   quota (`minimumMs` in `src/demo/Scenario.ts`): a token bucket spends its first `limit` at once and the rest
 *   at `limit` per window, `(total - limit) / limit x window`; a sliding window lets `limit` through per window,
 *   `(ceil(total / limit) - 1) x window`. It leaves out the model's latency, so 100% is out of reach (the last
 *   call still has to run: ~0.4 s of a ~24 s run). Actual wall time: the first call taken up to the last answer
 *   read, over all processes;
 * - 429s the emulator sent (its `rejected429`; each counted once per attempt), and its `violations` (admissions
 *   after which its own audit found a quota exceeded), and calls that did not end in a 200;
 * - p50 and p99 of each call's wait + call latency (taken up to answer read, retries included);
 * - for the multi-process contenders, each process's share of the admissions in every 10 s window from the
 *   start, min and max over processes and windows (25% each is even with 4 processes). Only windows that end
 *   before the first process has admitted its last call count (after that a process with nothing left to ask
 *   for is not starved); when no full window fits, the span up to that moment counts as one window;
 * - ordering probe: mean wait + call latency of the largest 5% of calls by charge (prompt + max_tokens) and
 *   of the rest. A limiter that lets small calls pass a big one that waits for room shows a big ratio. (Means,
 *   not medians: under a sliding window about half the calls wait for the next window and half do not, so a
 *   median of 30 calls lands on either side by chance.)
 *
 * A sliding window's minimum is a step: 600 calls need 4.92 windows of tokens, so a run that loses more than
 * 8% of a window's capacity (a refused attempt keeps its charge in the limiter: no `actualUsage` for a 429)
 * needs a sixth window, and reads 78% instead of ~97%.
 *
 * BENCH_OUT: write the results as JSON there, with every call's record (times in ms from the run's first
 * submission; `refused` holds when each 429'd attempt was admitted and answered) and each share window.
 * BENCH_CONTENDERS (comma separated: qf-redis, bottleneck, qf-memory; default all) picks contenders, for
 * debugging.
 */
import { type ChildProcess, fork } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Scope } from "effect"
import * as Emulator from "../src/emulator/Emulator.js"
import { minimumMs } from "../src/demo/Scenario.js"
import { type ChatCall, makeWorkload } from "../src/demo/Workload.js"
import { RedisServer } from "../test/support/redisServer.js"
import type { CallRecord, ContenderKind, FromWorker, ScenarioShape, Setup, ToWorker } from "./clusterWorker.js"

const CALLS = Number(process.env.BENCH_CALLS ?? 600)
const PROCS = Number(process.env.BENCH_PROCS ?? 4)
const TOTAL_CALLERS = 64
const SEED = 1
const MAX_ATTEMPTS = 3
const SHARE_WINDOW_MS = 10_000
const OUT = process.env.BENCH_OUT

interface Scenario {
  readonly key: string
  readonly name: string
  readonly shape: ScenarioShape
}

const WINDOW_MS = 6_000

const scenarios: ReadonlyArray<Scenario> = [
  {
    key: "a",
    name: "openai token-bucket",
    shape: { style: "openai", algorithm: "token-bucket", windowMs: WINDOW_MS, limits: { requests: 300, tokens: 180_000 }, binding: "tokens" }
  },
  {
    key: "b",
    name: "openai sliding-window",
    shape: { style: "openai", algorithm: "sliding-window", windowMs: WINDOW_MS, limits: { requests: 300, tokens: 180_000 }, binding: "tokens" }
  },
  {
    key: "c",
    name: "anthropic itpm/otpm",
    shape: {
      style: "anthropic",
      algorithm: "token-bucket",
      windowMs: WINDOW_MS,
      limits: { requests: 300, input_tokens: 150_000, output_tokens: 40_000 },
      binding: "output_tokens"
    }
  }
]

interface Contender {
  readonly key: string
  readonly name: string
  readonly kind: ContenderKind
  readonly procs: number
  readonly callers: number
}

const contenders: ReadonlyArray<Contender> = [
  { key: "qf-redis", name: "quotaflow redis", kind: "quotaflow-redis", procs: PROCS, callers: Math.max(1, Math.round(TOTAL_CALLERS / PROCS)) },
  { key: "bottleneck", name: "bottleneck cluster", kind: "bottleneck", procs: PROCS, callers: Math.max(1, Math.round(TOTAL_CALLERS / PROCS)) },
  { key: "qf-memory", name: "quotaflow memory", kind: "quotaflow-memory", procs: 1, callers: TOTAL_CALLERS }
]

const pick = <T extends { readonly key: string }>(all: ReadonlyArray<T>, env: string | undefined): ReadonlyArray<T> => {
  if (env === undefined || env.trim() === "") return all
  const keys = env.split(",").map((k) => k.trim()).filter((k) => k !== "")
  const unknown = keys.filter((k) => !all.some((item) => item.key === k))
  if (unknown.length > 0) throw new Error(`unknown ${unknown.join(", ")}; known: ${all.map((item) => item.key).join(", ")}`)
  return all.filter((item) => keys.includes(item.key))
}

// ---------------------------------------------------------------------------------------------------------
// Workers

const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

class Worker {
  ready = false
  records: ReadonlyArray<CallRecord> | undefined
  failure: string | undefined
  private stderr = ""
  private readonly waiters = new Set<() => void>()
  readonly exited: Promise<void>

  constructor(private readonly child: ChildProcess) {
    live.add(child)
    child.stderr?.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8")
      this.stderr = (this.stderr + text).slice(-4_000)
      process.stderr.write(text)
    })
    child.on("message", (message: FromWorker) => {
      if (message.type === "ready") this.ready = true
      else if (message.type === "result") this.records = message.records
      else this.failure ??= message.message
      this.changed()
    })
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        live.delete(child)
        if (this.records === undefined) this.failure ??= `exited (code ${code}, signal ${signal}): ${this.stderr.trim()}`
        this.changed()
        resolve()
      })
    )
  }

  static fork(): Worker {
    const path = fileURLToPath(new URL("./clusterWorker.ts", import.meta.url))
    return new Worker(
      fork(path, [], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        execArgv: ["--import", "tsx"],
        env: { ...process.env, BENCH_CLUSTER_WORKER: "1" },
        stdio: ["ignore", "inherit", "pipe", "ipc"],
        serialization: "json"
      })
    )
  }

  /** Forgets the previous run, before the next setup. */
  reset(): void {
    this.ready = false
    this.records = undefined
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.failure === undefined
  }

  send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message)
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Resolves when `done` holds; rejects on a failure or after `timeoutMs`. */
  until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure !== undefined) return finish(new Error(`worker failed: ${this.failure}`))
        if (done()) finish()
      }
      const finish = (error?: Error) => {
        clearTimeout(timer)
        this.waiters.delete(check)
        if (error === undefined) resolve()
        else reject(error)
      }
      const timer = setTimeout(() => finish(new Error(`worker did not ${what} within ${timeoutMs / 1000} s`)), timeoutMs)
      this.waiters.add(check)
      check()
    })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited
    this.child.kill("SIGTERM")
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2_000)
    await this.exited
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Statistics

const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const sortedOf = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)

type Metric = "requests" | "tokens" | "input_tokens" | "output_tokens"

/** What the workload finally charges each metric (output as generated: Anthropic refunds the rest). */
const totalsOf = (calls: ReadonlyArray<ChatCall>): Record<Metric, number> => ({
  requests: calls.length,
  tokens: calls.reduce((sum, c) => sum + c.promptTokens + c.maxTokens, 0),
  input_tokens: calls.reduce((sum, c) => sum + c.promptTokens, 0),
  output_tokens: calls.reduce((sum, c) => sum + c.completionTokens, 0)
})

/** The binding quota and its minimum time for the workload. */
const bindingOf = (shape: ScenarioShape, calls: ReadonlyArray<ChatCall>) => {
  const totals = totalsOf(calls)
  let best = { metric: "requests" as Metric, minimumMs: -1 }
  for (const metric of ["requests", "tokens", "input_tokens", "output_tokens"] as const) {
    const limit = shape.limits[metric]
    if (limit === undefined) continue
    const ms = minimumMs(shape.algorithm, totals[metric], limit, shape.windowMs)
    if (ms > best.minimumMs) best = { metric, minimumMs: ms }
  }
  return best
}

/** Min and max share of admissions per process over the 10 s windows (see the header). */
const sharesOf = (records: ReadonlyArray<CallRecord>, start: number) => {
  const pids = [...new Set(records.map((r) => r.pid))]
  const admitted = records.filter((r) => Number.isFinite(r.admitted))
  const lastOf = (pid: number) => Math.max(...admitted.filter((r) => r.pid === pid).map((r) => r.admitted))
  const cutoff = Math.min(...pids.map(lastOf))
  const windows: Array<readonly [number, number]> = []
  for (let from = start; from + SHARE_WINDOW_MS <= cutoff; from += SHARE_WINDOW_MS) windows.push([from, from + SHARE_WINDOW_MS])
  if (windows.length === 0) windows.push([start, cutoff])
  let min = Infinity
  let max = -Infinity
  const perWindow = windows.map(([from, to]) => {
    const inside = admitted.filter((r) => r.admitted >= from && r.admitted < to)
    const shares = pids.map((pid) => inside.filter((r) => r.pid === pid).length / Math.max(1, inside.length))
    for (const share of shares) {
      min = Math.min(min, share)
      max = Math.max(max, share)
    }
    return { fromS: (from - start) / 1000, toS: (to - start) / 1000, admissions: inside.length, shares }
  })
  return { min, max, windows: perWindow }
}

interface RunResult {
  readonly scenario: string
  readonly contender: string
  readonly procs: number
  readonly callers: number
  readonly calls: number
  readonly wallMs: number
  readonly minimumMs: number
  readonly bindingMetric: string
  readonly efficiency: number
  readonly emulator429: number
  readonly violations: number
  readonly notOk: number
  readonly retried: number
  /** Final statuses and errors of the calls that did not end in a 200, with their counts. */
  readonly failures: Readonly<Record<string, number>>
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly waitMs: { readonly p50: number; readonly p99: number }
  readonly share: ReturnType<typeof sharesOf> | undefined
  readonly probe: {
    readonly largeMeanMs: number
    readonly restMeanMs: number
    readonly largeP50Ms: number
    readonly restP50Ms: number
    readonly largeWaitMeanMs: number
    readonly restWaitMeanMs: number
  }
  /** Every call as its process reported it (in the JSON only). */
  readonly records?: ReadonlyArray<CallRecord>
  readonly error?: string
}

const summarize = (
  scenario: Scenario,
  contender: Contender,
  calls: ReadonlyArray<ChatCall>,
  records: ReadonlyArray<CallRecord>,
  stats: Emulator.EmulatorStats
): RunResult => {
  const start = Math.min(...records.map((r) => r.submitted))
  const end = Math.max(...records.map((r) => r.finished))
  const wallMs = end - start
  const binding = bindingOf(scenario.shape, calls)
  const latency = sortedOf(records.map((r) => r.finished - r.submitted))
  const wait = sortedOf(records.filter((r) => Number.isFinite(r.admitted)).map((r) => r.admitted - r.submitted))
  const bySize = [...records].sort((a, b) => b.promptTokens + b.maxTokens - (a.promptTokens + a.maxTokens))
  const largeCount = Math.max(1, Math.round(records.length * 0.05))
  const large = bySize.slice(0, largeCount)
  const rest = bySize.slice(largeCount)
  const p50Of = (rs: ReadonlyArray<CallRecord>, f: (r: CallRecord) => number) => quantile(sortedOf(rs.map(f)), 0.5)
  const meanOf = (rs: ReadonlyArray<CallRecord>, f: (r: CallRecord) => number) => rs.reduce((sum, r) => sum + f(r), 0) / rs.length
  return {
    scenario: scenario.name,
    contender: contender.name,
    procs: contender.procs,
    callers: contender.callers,
    calls: records.length,
    wallMs,
    minimumMs: binding.minimumMs,
    bindingMetric: binding.metric,
    efficiency: binding.minimumMs > 0 ? binding.minimumMs / wallMs : Number.NaN,
    emulator429: stats.rejected429,
    violations: stats.violations,
    notOk: records.filter((r) => r.status !== 200).length,
    retried: records.filter((r) => r.attempts > 1).length,
    failures: records.filter((r) => r.status !== 200).reduce<Record<string, number>>((acc, r) => {
      const key = r.error ?? `HTTP ${r.status}`
      acc[key] = (acc[key] ?? 0) + 1
      return acc
    }, {}),
    latencyMs: { p50: quantile(latency, 0.5), p99: quantile(latency, 0.99), max: latency.at(-1) ?? Number.NaN },
    waitMs: { p50: quantile(wait, 0.5), p99: quantile(wait, 0.99) },
    share: contender.procs > 1 ? sharesOf(records, start) : undefined,
    probe: {
      largeMeanMs: meanOf(large, (r) => r.finished - r.submitted),
      restMeanMs: meanOf(rest, (r) => r.finished - r.submitted),
      largeP50Ms: p50Of(large, (r) => r.finished - r.submitted),
      restP50Ms: p50Of(rest, (r) => r.finished - r.submitted),
      largeWaitMeanMs: meanOf(large, (r) => r.admitted - r.submitted),
      restWaitMeanMs: meanOf(rest, (r) => r.admitted - r.submitted)
    },
    records: [...records].sort((a, b) => a.submitted - b.submitted).map((r) => ({ ...r, submitted: r.submitted - start, admitted: r.admitted - start, finished: r.finished - start, refused: r.refused.map(([a, f]) => [a - start, f - start] as const) }))
  }
}

// ---------------------------------------------------------------------------------------------------------
// One run of one contender on one scenario

let runs = 0

const emulatorConfig = (shape: ScenarioShape): Emulator.EmulatorConfigInput => ({
  style: shape.style,
  algorithm: shape.algorithm,
  windowMs: shape.windowMs,
  limits: shape.limits,
  latency: { baseMs: shape.windowMs / 200, perTokenMs: shape.windowMs / 6_000 }
})

/**
 * Each contender's processes, kept from one scenario to the next (an idle process costs nothing, and a start-up
 * of tsx, Effect and the library costs seconds); a pool whose run failed is stopped and forked again.
 */
const pools = new Map<string, ReadonlyArray<Worker>>()

const poolOf = (contender: Contender): ReadonlyArray<Worker> => {
  const existing = pools.get(contender.key)
  if (existing !== undefined && existing.every((worker) => worker.alive)) return existing
  const workers = Array.from({ length: contender.procs }, () => Worker.fork())
  pools.set(contender.key, workers)
  return workers
}

const stopPools = () => Promise.all([...pools.values()].flat().map((worker) => worker.stop()))

const runOne = async (redis: RedisServer, scenario: Scenario, contender: Contender, calls: ReadonlyArray<ChatCall>): Promise<RunResult> => {
  const scope = Effect.runSync(Scope.make())
  const workers = poolOf(contender)
  let ok = false
  try {
    const emulator = await Effect.runPromise(Scope.extend(Emulator.serve(emulatorConfig(scenario.shape), { port: 0 }), scope))
    const namespace = `bench-cluster-${process.pid}-${++runs}`
    workers.forEach((worker, i) => {
      worker.reset()
      const setup: Setup = {
        type: "setup",
        kind: contender.kind,
        shape: scenario.shape,
        emulatorUrl: emulator.url,
        redisHost: "127.0.0.1",
        redisPort: redis.port,
        namespace,
        callers: contender.callers,
        calls: calls.filter((_, index) => index % contender.procs === i),
        maxAttempts: MAX_ATTEMPTS
      }
      worker.send(setup)
    })
    await Promise.all(workers.map((worker) => worker.until(() => worker.ready, "start and connect", 60_000)))
    for (const worker of workers) worker.send({ type: "go" })
    await Promise.all(workers.map((worker) => worker.until(() => worker.records !== undefined, "finish", 240_000)))
    const stats = await Effect.runPromise(emulator.stats)
    ok = true
    return summarize(scenario, contender, calls, workers.flatMap((worker) => worker.records ?? []), stats)
  } finally {
    if (!ok) {
      await Promise.all(workers.map((worker) => worker.stop()))
      pools.delete(contender.key)
    }
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// ---------------------------------------------------------------------------------------------------------
// Output

const seconds = (ms: number, digits = 1) => (Number.isFinite(ms) ? (ms / 1000).toFixed(digits) : "-")
const percent = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "-")

const table = (results: ReadonlyArray<RunResult>): string => {
  const header = ["scenario", "contender", "procs", "wall s", "min s", "eff", "429s", "viol", "not ok", "p50 s", "p99 s", "share min-max", "big5% mean", "rest mean"]
  const rows = results.map((r) =>
    r.error !== undefined
      ? [r.scenario, r.contender, `${r.procs}x${r.callers}`, `failed: ${r.error}`]
      : [
        r.scenario,
        r.contender,
        `${r.procs}x${r.callers}`,
        seconds(r.wallMs),
        seconds(r.minimumMs),
        percent(r.efficiency),
        String(r.emulator429),
        String(r.violations),
        String(r.notOk),
        seconds(r.latencyMs.p50, 2),
        seconds(r.latencyMs.p99, 2),
        r.share === undefined ? "-" : `${percent(r.share.min)}-${percent(r.share.max)}`,
        seconds(r.probe.largeMeanMs, 2),
        seconds(r.probe.restMeanMs, 2)
      ]
  )
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row.length === header.length ? (row[i] ?? "").length : 0))))
  const line = (row: ReadonlyArray<string>) =>
    row.length === header.length
      ? row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
      : row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : i === 2 ? cell.padStart(widths[i]!) : cell)).join("  ")
  return [line(header), ...rows.map(line)].join("\n")
}

const main = async () => {
  const selected = pick(scenarios, process.env.BENCH_SCENARIOS)
  const who = pick(contenders, process.env.BENCH_CONTENDERS)
  if (!Number.isSafeInteger(CALLS) || CALLS < 1) throw new Error(`BENCH_CALLS must be a positive integer, got ${process.env.BENCH_CALLS}`)
  if (!Number.isSafeInteger(PROCS) || PROCS < 1 || PROCS > 64) throw new Error(`BENCH_PROCS must be an integer from 1 to 64, got ${process.env.BENCH_PROCS}`)
  if (PROCS > CALLS) throw new Error(`BENCH_PROCS (${PROCS}) must be at most BENCH_CALLS (${CALLS})`)
  const calls = makeWorkload(CALLS, SEED)
  const redis = await RedisServer.start()
  const results: Array<RunResult> = []
  const began = Date.now()
  const version = `redis ${(await redis.cli("info", "server")).match(/redis_version:(\S+)/)?.[1] ?? "?"}`
  try {
    for (const scenario of selected) {
      for (const contender of who) {
        process.stderr.write(`${scenario.key} ${scenario.name}: ${contender.name} ${contender.procs}x${contender.callers} ... `)
        try {
          const result = await runOne(redis, scenario, contender, calls)
          results.push(result)
          process.stderr.write(`${seconds(result.wallMs)} s, ${percent(result.efficiency)}, ${result.emulator429} 429s\n`)
          for (const [what, count] of Object.entries(result.failures)) process.stderr.write(`  ${count} x ${what}\n`)
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error)
          process.stderr.write(`failed: ${message}\n`)
          results.push({ scenario: scenario.name, contender: contender.name, procs: contender.procs, callers: contender.callers, error: message } as RunResult)
        }
      }
    }
  } finally {
    await stopPools()
    await redis.close()
  }
  console.log(`One queue across processes: ${CALLS} calls (seed ${SEED}), 6 s window, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}, ${version}`)
  console.log(`eff: minimum wall time at the binding quota / wall time; 429s: sent by the emulator (per attempt); viol: emulator audit violations;`)
  console.log(`not ok: calls not ending in 200 after ${MAX_ATTEMPTS} attempts; p50/p99: wait + call per call; share: admissions per process per 10 s window;`)
  console.log(`big5% / rest mean: mean wait + call of the largest 5% of calls (prompt + max_tokens) and of the rest`)
  console.log("")
  console.log(table(results))
  console.log("")
  console.log(`total ${seconds(Date.now() - began)} s`)
  if (OUT !== undefined && OUT !== "") {
    writeFileSync(OUT, JSON.stringify({ calls: CALLS, seed: SEED, procs: PROCS, cpus: cpus().length, node: process.version, scenarios: selected, results }, null, 2))
    console.log(`results written to ${OUT}`)
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)

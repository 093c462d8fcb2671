/**
 * Overhead and accuracy of quotaflow against the floor (a bare Effect runtime call) and other limiters.
 *
 *   a. sequential no-op calls on a bucket whose quota never binds (calls/s, median of RUNS timed runs);
 *   b. 1,000 concurrent callers on the same bucket, submitted at once and awaited together (calls/s);
 *   c. a binding bucket of 20,000 calls/s under 2,000 concurrent looping callers, through the Promise adapter
 *      and the Effect API: achieved steady-state rate, lateness of every call against the token-bucket ideal,
 *      calls started early. Two shapes of the same rate:
 *        - { limit: 200, window: 10 } (ms): capacity 200, an initial burst of 200 calls, 10 ms of tolerance;
 *        - { limit: 20000, window: "1 second" }: capacity 20,000, an initial burst of 20,000 calls.
 *
 * Run:  npx tsx bench/overhead.ts                         (about 1.5 to 2 minutes on 2 cores)
 *       QUICK=1 npx tsx bench/overhead.ts                 (fewer runs, a smoke test)
 *       PART=ab / PART=c npx tsx bench/overhead.ts        (only (a) and (b), or only (c))
 *       QUOTAFLOW_FROM=build npx tsx bench/overhead.ts    (the tsc build of src/ instead of the source; see quotaflow.ts)
 * The machine's load matters, (c) most: the header and footer print the load average, and (c) counts the times
 * the OS preempted the process.
 */
import Bottleneck from "bottleneck"
import { Effect, Exit, Layer, ManagedRuntime, RateLimiter, Scope } from "effect"
import os from "node:os"
import { performance, PerformanceObserver } from "node:perf_hooks"
import PQueue from "p-queue"
import { loadQuotaflow, revision } from "./quotaflow.js"

const { quotaflow, from } = await loadQuotaflow()
const { createRateLimiter, MemoryBackend, RateLimited } = quotaflow

const QUICK = process.env.QUICK === "1"
const RUNS = QUICK ? 3 : 5
const TARGET_MS = QUICK ? 150 : 300 // length of one timed run of (a) and (b)
const BINDING_RUNS = QUICK ? 1 : 3
const PART = process.env.PART ?? "abc"

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
const fmt = (n: number, digits = 0): string => n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Contenders for (a) and (b): each has a sequential runner (n calls one after another) and a concurrent runner
// (`batches` times: `width` calls at once, await all).
// ---------------------------------------------------------------------------------------------------------------

const FREE = { buckets: { free: { quotas: [{ metric: "requests", limit: 1_000_000_000, window: "1 second" }] } } }
const meta = { bucket: "free" }
const noop = async (): Promise<undefined> => undefined
const noopEffect = Effect.void

interface Contender {
  readonly name: string
  readonly sequential: (n: number) => Promise<void>
  readonly concurrent: (width: number, batches: number) => Promise<void>
}

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

const promiseContender = (name: string, call: () => Promise<unknown>): Contender => ({
  name,
  sequential: async (n) => {
    for (let i = 0; i < n; i++) await call()
  },
  concurrent: async (width, batches) => {
    for (let b = 0; b < batches; b++) {
      const all = new Array<Promise<unknown>>(width)
      for (let i = 0; i < width; i++) all[i] = call()
      await Promise.all(all)
    }
  }
})

const inRuntimeContender = <R>(name: string, runtime: ManagedRuntime.ManagedRuntime<R, unknown>, call: Effect.Effect<void, unknown, R>): Contender => ({
  name,
  sequential: (n) =>
    runtime.runPromise(Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* call
    })).then(() => undefined),
  concurrent: (width, batches) =>
    runtime.runPromise(Effect.gen(function*() {
      const items = range(width)
      for (let b = 0; b < batches; b++) yield* Effect.forEach(items, () => call, { concurrency: "unbounded", discard: true })
    })).then(() => undefined)
})

/**
 * Runs `run(size)` with a growing size until it takes about a third of `TARGET_MS`; returns the size for one
 * timed run of about `TARGET_MS` (at least one unit) and how long one unit took.
 */
const calibrate = async (run: (size: number) => Promise<void>, unit: number): Promise<{ size: number; unitMs: number }> => {
  let size = unit
  for (;;) {
    const start = performance.now()
    await run(size)
    const elapsed = performance.now() - start
    if (elapsed > TARGET_MS / 3) return { size: Math.max(unit, Math.round((size * TARGET_MS) / elapsed)), unitMs: (elapsed * unit) / size }
    size *= 4
  }
}

const measure = async (run: (size: number) => Promise<void>, unit: number, callsPer: number): Promise<number> => {
  const { size, unitMs } = await calibrate(run, unit) // also the warm-up
  const slow = unitMs > 3 * TARGET_MS // one unit alone takes long (bottleneck's 1,000 concurrent): fewer runs
  if (!slow) await run(size) // one more untimed run at full size
  const rates: Array<number> = []
  for (let r = 0; r < (slow ? 3 : RUNS); r++) {
    const start = performance.now()
    await run(size)
    rates.push((size * callsPer) / ((performance.now() - start) / 1000))
  }
  return median(rates)
}

// ---------------------------------------------------------------------------------------------------------------
// (c) A binding bucket, with the ideal start of every call computed from the token-bucket math.
// ---------------------------------------------------------------------------------------------------------------

const RATE_PER_MS = 20 // 20,000 calls/s
const CALLERS = 2000

interface Shape {
  readonly label: string
  readonly quota: { readonly metric: "requests"; readonly limit: number; readonly window: number | string }
  /** Token bucket capacity: limit x burstMultiplier (1). */
  readonly capacity: number
  readonly total: number
  /** Calls from this index on are "steady state": the burst and the catch-up after it are over. */
  readonly steadyFrom: number
}

const SHAPES: ReadonlyArray<Shape> = [
  { label: "200 per 10 ms", quota: { metric: "requests", limit: 200, window: 10 }, capacity: 200, total: 80_000, steadyFrom: 2_000 },
  { label: "20,000 per 1 s", quota: { metric: "requests", limit: 20_000, window: "1 second" }, capacity: 20_000, total: 80_000, steadyFrom: 40_000 }
]

interface BindingResult {
  readonly rate: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly steadyP50: number
  readonly steadyP99: number
  /** p99 of the transient part of the steady calls' lateness (lateness above the floor that only rises). */
  readonly transientP99: number
  /** The floor at the end: time lost for good to stalls, against the never-idle ideal. */
  readonly lostMs: number
  readonly early: number
  readonly minLateness: number
  readonly burstMs: number
  readonly seconds: number
  readonly stalls: Stalls
}

interface Stalls {
  readonly gcMaxMs: number
  readonly gcTotalMs: number
  /** Longest time no timer callback could run (a 1 ms interval probe; run start and end count as ticks). */
  readonly timerGapMs: number
  /** Times the OS took the CPU away from a thread of this process (other load, or its own GC threads). */
  readonly preempted: number
  /** CPU time of the process (all threads: main and GC helpers) over wall time, in %. */
  readonly cpuPercent: number
}

/** Stalls of the process during a run: GC pauses, timer starvation, preemption by the OS. */
const stallMonitor = () => {
  const pauses: Array<number> = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration)
  })
  observer.observe({ entryTypes: ["gc"] })
  let last = performance.now()
  let timerGapMs = 0
  const probe = setInterval(() => {
    const now = performance.now()
    timerGapMs = Math.max(timerGapMs, now - last)
    last = now
  }, 1)
  const switches = process.resourceUsage().involuntaryContextSwitches
  const cpu = process.cpuUsage()
  const wall = performance.now()
  return async (): Promise<Stalls> => {
    timerGapMs = Math.max(timerGapMs, performance.now() - last)
    clearInterval(probe)
    const preempted = process.resourceUsage().involuntaryContextSwitches - switches
    const used = process.cpuUsage(cpu)
    const cpuPercent = (used.user + used.system) / 1000 / (performance.now() - wall) * 100
    await new Promise((resolve) => setTimeout(resolve, 20)) // let the last gc entries arrive
    observer.disconnect()
    return { gcMaxMs: Math.max(0, ...pauses), gcTotalMs: pauses.reduce((a, b) => a + b, 0), timerGapMs, preempted, cpuPercent }
  }
}

/**
 * t0 is when the first call started (performance.now()): it is booked at once on an empty bucket and runs in
 * the same synchronous stretch, microseconds after its booking. Taking its start instead of its booking
 * understates every lateness by those microseconds and makes the early check stricter by as much.
 */
const analyse = (shape: Shape, starts: Float64Array, wallMs: number, stalls: Stalls): BindingResult => {
  const base = starts[0]
  const lateness = new Float64Array(starts.length)
  let early = 0
  let minLateness = Infinity
  for (let k = 0; k < starts.length; k++) {
    const late = starts[k] - (base + Math.max(0, (k - shape.capacity + 1) / RATE_PER_MS))
    lateness[k] = late
    if (late < -0.5) early++
    minLateness = Math.min(minLateness, late)
  }
  // Lateness = a floor that only rises (capacity lost for good: a stall longer than the bucket's C / r ms lets
  // the token bucket fill up and overflow) + a transient part (how much later than the floor a call started).
  const transient = new Float64Array(starts.length)
  let floor = Infinity
  for (let k = starts.length - 1; k >= 0; k--) {
    floor = Math.min(floor, lateness[k])
    transient[k] = lateness[k] - floor
  }
  const lostMs = Math.min(...lateness.subarray(starts.length - 1000))
  const steadyTransient = transient.slice(shape.steadyFrom).sort()
  const steady = lateness.slice(shape.steadyFrom).sort()
  lateness.sort()
  const last = starts.length - 1
  return {
    rate: ((last - shape.steadyFrom) / (starts[last] - starts[shape.steadyFrom])) * 1000,
    p50: quantile(lateness, 0.5),
    p99: quantile(lateness, 0.99),
    max: lateness[last],
    steadyP50: quantile(steady, 0.5),
    steadyP99: quantile(steady, 0.99),
    transientP99: quantile(steadyTransient, 0.99),
    lostMs,
    early,
    minLateness,
    burstMs: starts[shape.capacity - 1] - starts[0],
    seconds: wallMs / 1000,
    stalls
  }
}

const configOf = (shape: Shape) => ({ buckets: { tight: { quotas: [shape.quota] } } })

/** The Promise adapter: 2,000 async loops, each submitting one call after another until `total` calls were issued. */
const bindingPromise = async (shape: Shape, total = shape.total): Promise<BindingResult> => {
  const limiter = createRateLimiter(configOf(shape))
  await limiter.status("tight") // the runtime is built
  const starts = new Float64Array(total)
  let issued = 0
  let started = 0
  const stalls = stallMonitor()
  const body = async () => {
    starts[started++] = performance.now()
  }
  const loop = async () => {
    while (issued < total) {
      issued++
      await limiter.submit({ bucket: "tight" }, body)
    }
  }
  const wall = performance.now()
  await Promise.all(range(CALLERS).map(loop))
  const wallMs = performance.now() - wall
  const stats = await stalls()
  await limiter.close()
  return analyse({ ...shape, total }, starts, wallMs, stats)
}

/** The Effect API: 2,000 fibers, each submitting one call after another until `total` calls were issued. */
const bindingEffect = async (shape: Shape, total = shape.total): Promise<BindingResult> => {
  const runtime = ManagedRuntime.make(RateLimited.layer(configOf(shape)).pipe(Layer.provide(MemoryBackend.layer)))
  await runtime.runPromise(RateLimited.status("tight"))
  const starts = new Float64Array(total)
  let issued = 0
  let started = 0
  const stalls = stallMonitor()
  const body = Effect.sync(() => {
    starts[started++] = performance.now()
  })
  const loop = Effect.gen(function*() {
    while (issued < total) {
      issued++
      yield* RateLimited.submit({ bucket: "tight" }, body)
    }
  })
  const wall = performance.now()
  await runtime.runPromise(Effect.forEach(range(CALLERS), () => loop, { concurrency: "unbounded", discard: true }))
  const wallMs = performance.now() - wall
  const stats = await stalls()
  await runtime.dispose()
  return analyse({ ...shape, total }, starts, wallMs, stats)
}

// ---------------------------------------------------------------------------------------------------------------

const main = async () => {
  const started = performance.now()
  console.log(`quotaflow overhead bench: node ${process.version}, ${process.platform}/${process.arch}, ${os.cpus().length} cpus, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  console.log(`quotaflow from: ${from}, revision ${revision()}; effect RateLimiter, bottleneck 2.19, p-queue 9 for comparison`)
  if (PART.includes("a") || PART.includes("b")) await partAB()
  if (PART.includes("c")) await partC()
  console.log(`\nload average at end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}; total bench time ${fmt((performance.now() - started) / 1000, 1)} s`)
}

const partAB = async () => {
  console.log(`(a)/(b): median of ${RUNS} timed runs of ~${TARGET_MS} ms each (3 when one batch alone takes longer), after warm-up\n`)

  const bare = ManagedRuntime.make(Layer.empty)
  const effectApi = ManagedRuntime.make(RateLimited.layer(FREE).pipe(Layer.provide(MemoryBackend.layer)))
  await effectApi.runPromise(RateLimited.status("free"))
  const limiter = createRateLimiter(FREE)
  await limiter.status("free")
  const bottleneck = new Bottleneck({})
  const pqueue = new PQueue({})
  const scope = Effect.runSync(Scope.make())
  const effectLimiter = await bare.runPromise(Scope.extend(RateLimiter.make({ limit: 1_000_000_000, interval: "1 second" }), scope))

  const submitEffect = RateLimited.submit(meta, noopEffect)
  const limitedEffect = effectLimiter(noopEffect)
  const contenders: ReadonlyArray<Contender> = [
    promiseContender("floor: bare runtime.runPromise(Effect.void)", () => bare.runPromise(noopEffect)),
    promiseContender("quotaflow Promise adapter submit", () => limiter.submit(meta, noop)),
    promiseContender("quotaflow Effect API, runPromise per call", () => effectApi.runPromise(submitEffect)),
    inRuntimeContender("quotaflow Effect API, in one runtime", effectApi, submitEffect),
    inRuntimeContender("Effect.void in one runtime (no limiter)", bare, noopEffect),
    inRuntimeContender("effect RateLimiter, in one runtime", bare, limitedEffect),
    promiseContender("effect RateLimiter, runPromise per call", () => bare.runPromise(limitedEffect)),
    promiseContender("bottleneck schedule", () => bottleneck.schedule(noop)),
    promiseContender("p-queue add", () => pqueue.add(noop))
  ]

  const seq = new Map<string, number>()
  const conc = new Map<string, number>()
  for (const c of contenders) {
    seq.set(c.name, await measure(c.sequential, 100, 1))
    process.stdout.write(".")
  }
  for (const c of contenders) {
    conc.set(c.name, await measure((batches) => c.concurrent(1000, batches), 1, 1000))
    process.stdout.write(".")
  }
  console.log("\n")

  const floorName = contenders[0].name
  const floorSeq = seq.get(floorName)!
  const floorConc = conc.get(floorName)!
  console.log("(a) sequential no-op calls and (b) 1,000 concurrent callers, unconstrained bucket (calls/s, median)")
  console.log(table(
    ["contender", "(a) sequential", "us/call", "vs floor", "(b) 1000 concurrent", "vs floor"],
    contenders.map((c) => [
      c.name,
      fmt(seq.get(c.name)!),
      fmt(1e6 / seq.get(c.name)!, 2),
      `${fmt(seq.get(c.name)! / floorSeq, 3)}x`,
      fmt(conc.get(c.name)!),
      `${fmt(conc.get(c.name)! / floorConc, 3)}x`
    ])
  ))
  const adapter = contenders[1].name
  const bottleneckName = "bottleneck schedule"
  const ratioFloor = seq.get(adapter)! / floorSeq
  const ratioBottleneck = seq.get(adapter)! / seq.get(bottleneckName)!
  console.log("")
  console.log(`adapter / bare runtime, sequential: ${fmt(ratioFloor, 3)}   target >= 0.5: ${ratioFloor >= 0.5 ? "MET" : "MISSED"}`)
  console.log(`adapter / bottleneck,   sequential: ${fmt(ratioBottleneck, 1)}   target >= 100: ${ratioBottleneck >= 100 ? "MET" : "MISSED"}`)
  console.log(`adapter / bare runtime, concurrent: ${fmt(conc.get(adapter)! / floorConc, 3)}`)
  console.log(`adapter / bottleneck,   concurrent: ${fmt(conc.get(adapter)! / conc.get(bottleneckName)!, 1)}`)

  await limiter.close()
  await effectApi.dispose()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await bare.dispose()
  await bottleneck.stop({ dropWaitingJobs: false })
  pqueue.clear()
  console.log("")
}

const partC = async () => {
  console.log(`(c) binding bucket of 20,000 calls/s (token bucket), ${fmt(CALLERS)} concurrent looping callers, median of ${BINDING_RUNS} runs per column`)
  for (const line of [
    "ideal start of the k-th call (0-based) = t0 + max(0, (k - C + 1) / 20) ms; C = capacity; t0 = the first call's start (it is",
    "booked at once and starts microseconds later).",
    "lateness = actual start - ideal; early = started more than 0.5 ms before its ideal; steady = the calls from \"steady from\" on",
    "(burst and catch-up over), which is also where the rate is measured.",
    "Lateness only steps up for good (its floor: capacity lost when a stall outlasts C / r, the bucket's tolerance: 10 ms for",
    "200 per 10 ms) plus a transient part: \"transient p99\" = p99 over the steady calls of lateness above that floor; \"lost ms\" =",
    "the floor at the end of the run. Stalls: gc max = longest GC pause; timer gap = longest time no timer callback ran (the",
    "driver sleeps on timers); preempted = involuntary context switches (other load, or this process's own GC threads);",
    "cpu % = process CPU time (all threads) / wall time; gc % = GC pauses / wall time."
  ]) console.log(`    ${line}`)
  // Warm-up: the code paths of both APIs under load (numbers not reported).
  await bindingPromise(SHAPES[0], 20_000)
  await bindingEffect(SHAPES[0], 20_000)
  const rows: Array<Array<string>> = []
  for (const shape of SHAPES) {
    for (const [name, run] of [["Promise adapter", bindingPromise], ["Effect API", bindingEffect]] as const) {
      const results: Array<BindingResult> = []
      for (let r = 0; r < BINDING_RUNS; r++) results.push(await run(shape))
      const m = (f: (r: BindingResult) => number) => median(results.map(f))
      const rate = m((r) => r.rate)
      rows.push([
        `${shape.label}, ${name}`,
        fmt(shape.capacity),
        fmt(shape.total),
        fmt(shape.steadyFrom),
        fmt(rate),
        `${fmt(rate / 20_000, 3)} ${rate / 20_000 >= 0.95 ? "ok" : "MISS"}`,
        fmt(m((r) => r.p50), 2),
        `${fmt(m((r) => r.p99), 2)} ${m((r) => r.p99) < 5 ? "ok" : "MISS"}`,
        fmt(m((r) => r.max), 2),
        fmt(m((r) => r.steadyP50), 2),
        fmt(m((r) => r.steadyP99), 2),
        fmt(m((r) => r.transientP99), 2),
        fmt(m((r) => r.lostMs), 1),
        `${fmt(m((r) => r.early))} ${m((r) => r.early) === 0 ? "ok" : "MISS"}`,
        fmt(m((r) => r.minLateness), 3),
        fmt(m((r) => r.burstMs), 1),
        fmt(m((r) => r.stalls.gcMaxMs), 1),
        fmt(m((r) => r.stalls.timerGapMs), 1),
        fmt(m((r) => r.stalls.preempted)),
        fmt(m((r) => r.stalls.cpuPercent)),
        fmt(m((r) => (r.stalls.gcTotalMs / (r.seconds * 1000)) * 100)),
        fmt(m((r) => r.seconds), 2)
      ])
    }
  }
  console.log(table(
    ["bucket, path", "C", "calls", "steady from", "rate/s", "rate/20k", "p50 ms", "p99 ms", "max ms", "steady p50", "steady p99", "transient p99", "lost ms", "early", "min late ms", "burst ms", "gc max ms", "timer gap ms", "preempted", "cpu %", "gc %", "run s"],
    rows
  ))
  console.log(`targets: rate/20k >= 0.95, p99 lateness < 5 ms, early = 0`)
}

await main()

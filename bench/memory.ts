/**
 * Memory of a waiting caller: 100,000 callers queued on one bucket that admits nothing for an hour (one request
 * per hour, already used), heap bytes per waiter = (heapUsed with them queued - heapUsed before) / 100,000, both
 * taken after full GCs. Then every waiter is released or aborted and the heap is measured again, to check that
 * it returns to the baseline. Side by side: quotaflow's Promise adapter (the target: under 2 KiB per waiter),
 * the same with an AbortSignal per caller, quotaflow's Effect API with a fiber per caller, p-queue (concurrency 1,
 * blocked by a first task), Effect's RateLimiter with a fiber per caller, and the floor: a bare `new Promise`
 * plus an array entry.
 *
 * The Promise adapter is measured twice: from src/ through tsx (as the other benches import it) and from the
 * JavaScript that tsc emits for src/ (what `npm run build` ships), compiled into bench/.build first (see
 * quotaflow.ts): tsx's esbuild `keepNames` gives every closure an own `name` property, which costs memory.
 *
 * Run:  node --expose-gc --import tsx bench/memory.ts      (about 1.5 minutes on 2 cores)
 *       SKIP_BUILD=1 node --expose-gc --import tsx bench/memory.ts   (source only)
 *       FULL=1 node --expose-gc --import tsx bench/memory.ts         (the tsc build of every quotaflow row, ~1 min more)
 */
import { Effect, Exit, Fiber, Layer, ManagedRuntime, RateLimiter, Scope } from "effect"
import os from "node:os"
import { performance } from "node:perf_hooks"
import PQueue from "p-queue"
import * as source from "../src/index.js"
import { loadBuild, type Quotaflow, revision } from "./quotaflow.js"

const WAITERS = 100_000
const RUNS = 3
const FULL = process.env.FULL === "1"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  console.error("run with: node --expose-gc --import tsx bench/memory.ts")
  process.exit(1)
}

/** Full collections until the heap stops shrinking; returns heapUsed. */
const settledHeap = async (): Promise<number> => {
  let last = Infinity
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc()
    const used = process.memoryUsage().heapUsed
    if (used >= last - 1024) return used
    last = used
  }
  return last
}

const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

const HOURLY = { buckets: { hourly: { quotas: [{ metric: "requests", limit: 1, window: "1 hour" }] } } }
const meta = { bucket: "hourly" }
const noop = async (): Promise<undefined> => undefined

/**
 * One contender: `setup` builds whatever lives before the baseline (a limiter with its one request used);
 * `fill` queues n waiters and resolves once they are all waiting; `release` releases or aborts them all and
 * resolves once every caller has settled; `teardown` frees the rest.
 */
interface Contender {
  readonly name: string
  readonly release: string
  readonly make: () => Promise<{
    fill: (n: number) => Promise<void>
    release: () => Promise<void>
    teardown: () => Promise<void>
  }>
}

const floor: Contender = {
  name: "floor: new Promise + array entry",
  release: "resolve each",
  make: async () => {
    let promises: Array<Promise<void>> = []
    let resolvers: Array<() => void> = []
    return {
      fill: async (n) => {
        for (let i = 0; i < n; i++) promises.push(new Promise<void>((resolve) => resolvers.push(resolve)))
      },
      release: async () => {
        for (const resolve of resolvers) resolve()
        await Promise.all(promises)
        promises = []
        resolvers = []
      },
      teardown: async () => {}
    }
  }
}

const adapterOf = ({ createRateLimiter }: Quotaflow, label: string): Contender => ({
  name: `quotaflow Promise adapter submit${label}`,
  release: "limiter.close()",
  make: async () => {
    const limiter = createRateLimiter(HOURLY)
    await limiter.submit(meta, noop) // the one request of the hour
    let promises: Array<Promise<unknown>> = []
    return {
      fill: async (n) => {
        for (let i = 0; i < n; i++) promises.push(limiter.submit(meta, noop))
        await ticks(2)
        const { queued } = await limiter.status("hourly")
        if (queued !== n) throw new Error(`expected ${n} queued, got ${queued}`)
      },
      release: async () => {
        const settled = Promise.allSettled(promises)
        await limiter.close()
        const results = await settled
        if (results.some((r) => r.status !== "rejected")) throw new Error("a waiter was admitted")
        promises = []
      },
      teardown: async () => {}
    }
  }
})

const adapterWithSignalOf = ({ createRateLimiter }: Quotaflow, label: string): Contender => ({
  name: `quotaflow Promise adapter + AbortSignal each${label}`,
  release: "abort each signal",
  make: async () => {
    const limiter = createRateLimiter(HOURLY)
    await limiter.submit(meta, noop)
    let promises: Array<Promise<unknown>> = []
    let controllers: Array<AbortController> = []
    return {
      fill: async (n) => {
        for (let i = 0; i < n; i++) {
          const controller = new AbortController()
          controllers.push(controller)
          promises.push(limiter.submit(meta, noop, { signal: controller.signal }))
        }
        await ticks(2)
        const { queued } = await limiter.status("hourly")
        if (queued !== n) throw new Error(`expected ${n} queued, got ${queued}`)
      },
      release: async () => {
        const settled = Promise.allSettled(promises)
        for (const controller of controllers) controller.abort()
        const results = await settled
        if (results.some((r) => r.status !== "rejected")) throw new Error("a waiter was admitted")
        const { queued } = await limiter.status("hourly")
        if (queued !== 0) throw new Error(`${queued} still queued after the aborts`)
        promises = []
        controllers = []
      },
      teardown: () => limiter.close()
    }
  }
})

const effectApiOf = ({ MemoryBackend, RateLimited }: Quotaflow, label: string): Contender => ({
  name: `quotaflow Effect API, fiber per caller${label}`,
  release: "Fiber.interruptAll",
  make: async () => {
    const runtime = ManagedRuntime.make(RateLimited.layer(HOURLY).pipe(Layer.provide(MemoryBackend.layer)))
    await runtime.runPromise(RateLimited.submit(meta, Effect.void))
    const call = RateLimited.submit(meta, Effect.void)
    let fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
    return {
      fill: async (n) => {
        for (let i = 0; i < n; i++) fibers.push(runtime.runFork(call))
        for (let i = 0; i < 50; i++) {
          await ticks(1)
          if ((await runtime.runPromise(RateLimited.status("hourly"))).queued === n) return
        }
        throw new Error("the fibers did not all queue")
      },
      release: async () => {
        await runtime.runPromise(Fiber.interruptAll(fibers))
        const { queued } = await runtime.runPromise(RateLimited.status("hourly"))
        if (queued !== 0) throw new Error(`${queued} still queued after the interruptions`)
        fibers = []
      },
      teardown: () => runtime.dispose()
    }
  }
})

const pQueue: Contender = {
  name: "p-queue add (concurrency 1, blocked)",
  release: "unblock, run all",
  make: async () => {
    const queue = new PQueue({ concurrency: 1 })
    let unblock = () => {}
    let promises: Array<Promise<unknown>> = []
    return {
      fill: async (n) => {
        promises.push(queue.add(() => new Promise<void>((resolve) => (unblock = resolve))))
        for (let i = 0; i < n; i++) promises.push(queue.add(noop))
        await ticks(2)
        if (queue.size !== n) throw new Error(`expected ${n} queued, got ${queue.size}`)
      },
      release: async () => {
        unblock()
        await Promise.all(promises)
        await queue.onIdle()
        promises = []
      },
      teardown: async () => {}
    }
  }
}

const effectRateLimiter: Contender = {
  name: "effect RateLimiter, fiber per caller",
  release: "Fiber.interruptAll",
  make: async () => {
    const runtime = ManagedRuntime.make(Layer.empty)
    const scope = Effect.runSync(Scope.make())
    const limit = await runtime.runPromise(Scope.extend(RateLimiter.make({ limit: 1, interval: "1 hour" }), scope))
    await runtime.runPromise(limit(Effect.void))
    const call = limit(Effect.void)
    let fibers: Array<Fiber.RuntimeFiber<void, never>> = []
    return {
      fill: async (n) => {
        for (let i = 0; i < n; i++) fibers.push(runtime.runFork(call))
        await ticks(5)
      },
      release: async () => {
        await runtime.runPromise(Fiber.interruptAll(fibers))
        fibers = []
      },
      teardown: async () => {
        await Effect.runPromise(Scope.close(scope, Exit.void))
        await runtime.dispose()
      }
    }
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmt = (n: number, digits = 0): string => n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

interface Sample {
  readonly perWaiter: number
  readonly retainedPerWaiter: number
  readonly retained: number
  readonly fillMs: number
  readonly releaseMs: number
}

const sample = async (contender: Contender, n: number): Promise<Sample> => {
  const instance = await contender.make()
  const before = await settledHeap()
  let t = performance.now()
  await instance.fill(n)
  const fillMs = performance.now() - t
  const during = await settledHeap()
  t = performance.now()
  await instance.release()
  const releaseMs = performance.now() - t
  const after = await settledHeap()
  await instance.teardown()
  return { perWaiter: (during - before) / n, retained: after - before, retainedPerWaiter: (after - before) / n, fillMs, releaseMs }
}

const main = async () => {
  const started = performance.now()
  console.log(`quotaflow memory bench: node ${process.version}, ${process.platform}/${process.arch}, ${os.cpus().length} cpus, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  console.log(`revision ${revision()}`)
  console.log(`${fmt(WAITERS)} waiters on one bucket admitting nothing for an hour; heapUsed after full GCs; median of ${RUNS} runs\n`)
  const build = process.env.SKIP_BUILD === "1" ? undefined : await loadBuild()
  const adapter = adapterOf(source, " (src via tsx)")
  const adapterBuilt = build ? [adapterOf(build, " (tsc build)")] : []
  const contenders = [
    floor,
    adapter,
    ...adapterBuilt,
    adapterWithSignalOf(source, " (src via tsx)"),
    ...(build && FULL ? [adapterWithSignalOf(build, " (tsc build)")] : []),
    effectApiOf(source, " (src via tsx)"),
    ...(build && FULL ? [effectApiOf(build, " (tsc build)")] : []),
    pQueue,
    effectRateLimiter
  ]
  const rows: Array<Array<string>> = []
  const perWaiter = new Map<Contender, number>()
  for (const contender of contenders) {
    await sample(contender, 1000) // warm-up: compiles the code paths before any baseline is taken
    const samples: Array<Sample> = []
    for (let r = 0; r < RUNS; r++) samples.push(await sample(contender, WAITERS))
    const m = (f: (s: Sample) => number) => median(samples.map(f))
    perWaiter.set(contender, m((s) => s.perWaiter))
    rows.push([
      contender.name,
      fmt(m((s) => s.perWaiter)),
      fmt(m((s) => s.perWaiter) / 1024, 2),
      fmt((m((s) => s.perWaiter) * WAITERS) / 2 ** 20, 1),
      contender.release,
      fmt(m((s) => s.retained) / 1024, 1),
      fmt(m((s) => s.retainedPerWaiter), 2),
      fmt(m((s) => s.fillMs)),
      fmt(m((s) => s.releaseMs))
    ])
  }
  const head = ["contender", "B/waiter", "KiB/waiter", "MiB/100k", "release by", "heap after release - before (KiB)", "B/waiter left", "fill ms", "release ms"]
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
  console.log([line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n"))
  console.log("")
  for (const c of [adapter, ...adapterBuilt]) {
    const bytes = perWaiter.get(c)!
    console.log(`${c.name}: ${fmt(bytes)} B per waiter; target < 2 KiB (2048 B): ${bytes < 2048 ? "MET" : "MISSED"}`)
  }
  console.log(`total bench time ${fmt((performance.now() - started) / 1000, 1)} s`)
}

await main()

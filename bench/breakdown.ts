/**
 * Where the time and the allocations of one uncontended call go: the Promise adapter's `submit` split into its
 * steps (timed one by one, sequentially, µs per step), then the bytes each call allocates (collected garbage
 * included, from V8's sampling heap profiler) for the bare runtime call, the Promise adapter and the Effect API.
 * A companion to overhead.ts; it reaches into src/internal, so it follows the code as it is today.
 *
 * Run:  npx tsx bench/breakdown.ts      (about 30 to 50 s)
 */
import { Effect, Either, Layer, ManagedRuntime } from "effect"
import { Session } from "node:inspector/promises"
import { performance } from "node:perf_hooks"
import { createRateLimiter, MemoryBackend, RateLimited } from "../src/index.js"
import { BucketState } from "../src/internal/bucketState.js"
import * as Limiter from "../src/internal/limiter.js"
import * as Quota from "../src/Quota.js"
import { revision } from "./quotaflow.js"

const FREE = { buckets: { free: { quotas: [{ metric: "requests", limit: 1_000_000_000, window: "1 second" }] } } }
const meta = { bucket: "free" }
const noop = async (): Promise<undefined> => undefined
const N = 100_000

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]

/** µs per call of `f`, awaited when it returns a promise; median of 3 runs of N after a warm-up. */
const time = async (label: string, f: () => unknown): Promise<void> => {
  const run = async (n: number) => {
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      const r = f()
      if (r instanceof Promise) await r
    }
    return ((performance.now() - start) * 1000) / n
  }
  await run(20_000)
  const us = median([await run(N), await run(N), await run(N)])
  console.log(`${us.toFixed(2).padStart(8)} µs  ${label}`)
}

const main = async () => {
  console.log(`quotaflow breakdown: node ${process.version}; src/ through tsx, revision ${revision()}\n`)
  const runtime = ManagedRuntime.make(Limiter.layer(FREE).pipe(Layer.provide(MemoryBackend.layer)))
  const core = await runtime.runPromise(Limiter.LimiterCore)
  const entry = Either.getOrThrow(core.entry("free"))
  const charge = Either.getOrThrow(core.charge(entry, undefined))
  const book = () => (Effect.runSync(core.backend.reserve(entry.bucket, charge, 0)) as { reservation: { id: string } }).reservation.id
  const bare = ManagedRuntime.make(Layer.empty)
  await bare.runPromise(Effect.void)
  const limiter = createRateLimiter(FREE)
  await limiter.status("free")
  const state = new BucketState(entry.bucket)

  console.log("time per step (sequential, one call at a time):")
  await time("the whole of limiter.submit(meta, async () => undefined)", () => limiter.submit(meta, noop))
  await time("  enqueue -> driver fiber wakes -> backend.reserve -> onAdmit, as a promise", () =>
    new Promise((resolve, reject) => core.enqueue(entry, charge, Infinity, { onAdmit: resolve, onFail: reject, onClosed: reject })))
  await time("  book (runSync) + runtime.runPromiseExit(limiter.settle): fiber, settle, notify -> driver wakes", () =>
    runtime.runPromiseExit(core.settle(entry, book(), [])))
  await time("  book (runSync) + runtime.runPromiseExit(backend.settle), no notify", () =>
    runtime.runPromiseExit(core.backend.settle(entry.bucket, book(), [])))
  await time("  book (runSync) alone: the part of the two rows above that a real call does not pay", () => book())
  await time("  book (runSync) + runSync(backend.settle)", () => Effect.runSync(core.backend.settle(entry.bucket, book(), [])))
  await time("  new AbortController() + .signal (one per submit)", () => new AbortController().signal)
  await time("  limiter.charge + Quota.actualOf (usage decoding)", () => [core.charge(entry, undefined), Quota.actualOf(entry.bucket, undefined)])
  await time("  BucketState.reserve + settle (the GCRA arithmetic alone)", () => {
    const outcome = state.reserve(charge, Date.now(), 0)
    if (outcome._tag === "Reserved") state.settle(outcome.id, [undefined], Date.now())
  })
  await time("floor: bare runtime.runPromise(Effect.void)", () => bare.runPromise(Effect.void))
  await time("floor: Effect.runSync(Effect.flatMap(Clock.currentTimeMillis, succeed))", () =>
    Effect.runSync(Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), Effect.succeed)))

  // Allocations: V8's sampling heap profiler, keeping samples of objects already collected.
  const effectApi = ManagedRuntime.make(RateLimited.layer(FREE).pipe(Layer.provide(MemoryBackend.layer)))
  const submitEffect = RateLimited.submit(meta, Effect.void)
  await effectApi.runPromise(submitEffect)
  const session = new Session()
  session.connect()
  await session.post("HeapProfiler.enable")
  type Node = { callFrame: { url: string }; selfSize: number; children: Array<Node> }
  const allocated = async (label: string, n: number, run: () => Promise<unknown>) => {
    await run() // warm-up
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    } as never)
    await run()
    const { profile } = (await session.post("HeapProfiler.stopSampling")) as unknown as { profile: { head: Node } }
    const byFile = new Map<string, number>()
    let total = 0
    const walk = (node: Node) => {
      const file = node.callFrame.url.replace(/^.*node_modules\//, "").replace(/^.*\/work\/main\//, "").replace(/^file:\/\/\/.*\/(src|bench)\//, "$1/") || "(vm / builtins)"
      byFile.set(file, (byFile.get(file) ?? 0) + node.selfSize)
      total += node.selfSize
      node.children.forEach(walk)
    }
    walk(profile.head)
    const top = [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([f, b]) => `${f} ${Math.round(b / n)}`).join(", ")
    console.log(`${Math.round(total / n).toString().padStart(8)} B  ${label}\n            top: ${top}`)
  }
  const n = 50_000
  console.log("\nbytes allocated per call (sampled, garbage included):")
  await allocated("bare runtime.runPromise(Effect.void)", n, async () => {
    for (let i = 0; i < n; i++) await bare.runPromise(Effect.void)
  })
  await allocated("Promise adapter submit", n, async () => {
    for (let i = 0; i < n; i++) await limiter.submit(meta, noop)
  })
  await allocated("Effect API submit, loop in one runPromise", n, () =>
    effectApi.runPromise(Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* submitEffect
    })))
  session.disconnect()
  await limiter.close()
  await runtime.dispose()
  await effectApi.dispose()
  await bare.dispose()
}

await main()

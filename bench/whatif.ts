/**
 * What-if estimates for the Promise adapter's per-call cost (sequential no-op calls, unconstrained bucket): the
 * code of src/ as it is, then with the changes below (suggested by the profile), patched in at run time in this
 * process only (src/ is not modified). The numbers are estimates of what the changes would buy, not a fix:
 *   notify  BucketQueue.notify() wakes the driver only when a caller is queued (today every settle wakes it);
 *   signal  no AbortController per submit (a shared, never-aborted signal; the adapter passes options.signal on);
 *   sync    an empty queue books synchronously (Effect.runSyncExit of backend.reserve) instead of waking the
 *           driver fiber; an async backend (Redis) would fall back to the queue;
 *   settle  the settlement runs through Effect.runSyncExit(backend.settle), handing the adapter an Exit that
 *           runPromiseExit resolves without a fiber of its own. runSyncExit still builds a fiber inside, so this
 *           buys little: the gain needs the memory backend's bookkeeping called with no Effect run at all.
 * The variants are measured round-robin, median of 7 runs of 50,000 calls each.
 *
 * Run:  npx tsx bench/whatif.ts                         (about 30 s)
 *       QUOTAFLOW_FROM=build npx tsx bench/whatif.ts    (the tsc build of src/: no tsx `__name` wrappers)
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { performance } from "node:perf_hooks"
import type { Waiter } from "../src/internal/bucketQueue.js"
import { loadQuotaflow, revision } from "./quotaflow.js"

const { quotaflow, from, module } = await loadQuotaflow()
const { createRateLimiter } = quotaflow
const { BucketQueue } = (await module("internal/bucketQueue")) as typeof import("../src/internal/bucketQueue.js")
type BucketQueue = InstanceType<typeof BucketQueue>
const { Limiter } = (await module("internal/limiter")) as typeof import("../src/internal/limiter.js")

const on = { notify: false, signal: false, sync: false, settle: false }

const notify = BucketQueue.prototype.notify
BucketQueue.prototype.notify = function(this: BucketQueue) {
  if (!on.notify || this.length > 0) notify.call(this)
}
const enqueue = BucketQueue.prototype.enqueue
BucketQueue.prototype.enqueue = function(this: BucketQueue, waiter: Waiter) {
  // Private fields, read for the estimate only.
  const self = this as unknown as { head: Waiter | undefined; backend: { reserve: (...args: Array<unknown>) => Effect.Effect<any, any> }; bucket: unknown }
  if (on.sync && self.head === undefined) {
    const exit = Effect.runSyncExit(self.backend.reserve(self.bucket, waiter.charge, 0))
    if (exit._tag === "Success" && exit.value._tag === "Reserved") return waiter.onAdmit(exit.value.reservation)
  }
  enqueue.call(this, waiter)
}
const settle = Limiter.prototype.settle
Limiter.prototype.settle = function(this: InstanceType<typeof Limiter>, entry, id, actual) {
  if (!on.settle) return settle.call(this, entry, id, actual)
  const exit = Effect.runSyncExit(this.backend.settle(entry.bucket, id, actual))
  entry.queue.notify()
  return exit
}
const RealAbortController = globalThis.AbortController
const never = new RealAbortController().signal
globalThis.AbortController = function() {
  return on.signal ? { signal: never, abort: () => {} } : new RealAbortController()
} as unknown as typeof AbortController

const FREE = { buckets: { free: { quotas: [{ metric: "requests", limit: 1_000_000_000, window: "1 second" }] } } }
const meta = { bucket: "free" }
const noop = async (): Promise<undefined> => undefined
const N = 50_000

const main = async () => {
  const limiter = createRateLimiter(FREE)
  await limiter.status("free")
  const bare = ManagedRuntime.make(Layer.empty)
  await bare.runPromise(Effect.void)
  const variants: ReadonlyArray<[string, typeof on | undefined]> = [
    ["floor: bare runtime.runPromise(Effect.void)", undefined],
    ["adapter as it is", { notify: false, signal: false, sync: false, settle: false }],
    ["adapter + notify", { notify: true, signal: false, sync: false, settle: false }],
    ["adapter + signal", { notify: false, signal: true, sync: false, settle: false }],
    ["adapter + notify + signal", { notify: true, signal: true, sync: false, settle: false }],
    ["adapter + notify + signal + sync", { notify: true, signal: true, sync: true, settle: false }],
    ["adapter + notify + signal + sync + settle", { notify: true, signal: true, sync: true, settle: true }]
  ]
  const rates = variants.map(() => [] as Array<number>)
  const once = async (i: number, n: number) => {
    const flags = variants[i][1]
    const start = performance.now()
    if (flags === undefined) {
      for (let k = 0; k < n; k++) await bare.runPromise(Effect.void)
    } else {
      Object.assign(on, flags)
      for (let k = 0; k < n; k++) await limiter.submit(meta, noop)
    }
    return n / ((performance.now() - start) / 1000)
  }
  for (let i = 0; i < variants.length; i++) await once(i, 10_000) // warm-up
  for (let r = 0; r < 7; r++) for (let i = 0; i < variants.length; i++) rates[i].push(await once(i, N))
  const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
  const floor = median(rates[0])
  console.log(`what-if, sequential no-op calls: node ${process.version}; quotaflow from ${from}, revision ${revision()}\n`)
  console.log(`${"variant".padEnd(44)}  ${"calls/s".padStart(9)}  ${"µs/call".padStart(7)}  vs floor`)
  variants.forEach(([name], i) => {
    const rate = median(rates[i])
    console.log(`${name.padEnd(44)}  ${Math.round(rate).toLocaleString("en-US").padStart(9)}  ${(1e6 / rate).toFixed(2).padStart(7)}  ${(rate / floor).toFixed(3)}`)
  })
  Object.assign(on, { notify: false, signal: false, sync: false, settle: false })
  await limiter.close()
  await bare.dispose()
}

await main()

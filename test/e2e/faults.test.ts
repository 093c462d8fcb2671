/**
 * Redis faults under load, across processes: three worker processes (`faultsWorker.ts`) share one quota through
 * the Redis backend while Redis is paused, blocked, out of memory, flushed, stripped of its function library,
 * or restarted empty, and while one of the workers is killed. Every call's work is a request to an audit server
 * in this process (`test/support/audit.ts`), which counts what really ran at once, on one clock.
 *
 * What each fault must leave true, with default settings except a short `commandTimeout` where the fault
 * outlasts it:
 * - every call ends within a bound (the fault's duration plus a margin) with its result or a typed error of the
 *   library: no defect, no hang;
 * - nothing is over-admitted: never more than 5 calls at once on the concurrency quota, never more than 20
 *   calls in a second on the rate quota, across the three processes (the policy is the default fail-closed),
 *   except where Redis lost its state: what it forgot, it admits again;
 * - nothing is held after: once the calls have ended, both buckets are free again within a few seconds, far
 *   sooner than the default `reservationTtl` of 10 minutes, and a fresh limiter takes all 5 slots at once;
 * - where Redis lost its state (FLUSHALL, a restart without persistence), a call whose work succeeded returns
 *   the work's result.
 *
 * The workers are started once (seconds each on a small machine) and serve every scenario in turn, each on a
 * Redis server and a namespace of its own; the scenario that kills a worker comes last.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { fileURLToPath } from "node:url"
import { RateLimited, RedisBackendLive } from "../../src/index.js"
import type { LimiterConfig } from "../../src/Quota.js"
import { AuditServer } from "../support/audit.js"
import { RedisServer } from "../support/redisServer.js"
import { Child, stopAll } from "./children.js"
import type { BackendSettings, CallReport, FaultCommand, FaultReport, FaultWorkerSettings, Load } from "./faultsWorker.js"

const workerPath = fileURLToPath(new URL("./faultsWorker.ts", import.meta.url))

/** Calls at once on `slots`; calls per window on `rate`. */
const SLOTS = 5
const RATE = 20
const RATE_WINDOW_MS = 1_000

const limiter: LimiterConfig = {
  buckets: {
    slots: { quotas: [{ metric: "requests", limit: SLOTS, algorithm: "concurrency" }] },
    // The skew covers the time from a booking to the audit server, which varies by tens of milliseconds
    // between processes on a busy machine; the audit counts arrivals in plain windows, as a provider does.
    rate: { quotas: [{ metric: "requests", limit: RATE, window: RATE_WINDOW_MS, algorithm: "sliding-window" }], skew: 250 }
  }
}

/**
 * Per process: 4 callers keep the 5 slots busy (12 callers for 5 slots, so admissions queue), 2 callers keep
 * the rate quota at its limit.
 */
const LOAD: ReadonlyArray<Load> = [
  { bucket: "slots", callers: 4, workMs: 100 },
  { bucket: "rate", callers: 2, workMs: 10 }
]

/** The short command timeout of the scenarios whose fault (2 s) outlasts it. */
const COMMAND_TIMEOUT_MS = 300

/**
 * How long after the fault ends a call may still take: the longest it spends on Redis after the fault (3
 * attempts of at most the default 500 ms command timeout, and the retry delays between them) and the wait in
 * the queue behind the other callers, with room for a busy 2-core machine.
 */
const MARGIN_MS = 3_000

/** How soon after the calls end both buckets must be free again; a leak holds them for 10 minutes. */
const FREE_WITHIN_MS = 3_000

type Worker = Child<FaultCommand, FaultReport>

let audit: AuditServer | undefined
const workers: Array<Worker> = []
let runs = 0

beforeAll(async () => {
  audit = await AuditServer.start()
  const url = audit.url
  for (let i = 0; i < 3; i++) workers.push(Child.forkScript<FaultCommand, FaultReport, FaultWorkerSettings>(workerPath, { name: `w${i}`, auditUrl: url }))
  await Promise.all(workers.map((worker) => worker.next("ready", 60_000)))
}, 90_000)

afterAll(async () => {
  await stopAll(workers)
  await audit?.close()
}, 20_000)

const auditServer = (): AuditServer => {
  if (audit === undefined) throw new Error("the audit server did not start")
  return audit
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A namespace no other scenario shares. */
const namespace = () => `faults-${process.pid}-${Date.now()}-${++runs}`

/** What the scenario saw once the calls had ended: how soon both buckets were free, and whether all slots could be taken. */
interface Afterwards {
  /** Milliseconds until both buckets were free, or undefined if they were not within `FREE_WITHIN_MS`. */
  readonly freeAfterMs: number | undefined
  readonly lastStatus: string
  readonly tookAllSlots: boolean
  readonly takeAllError?: string
}

/**
 * A fresh limiter on the same Redis and namespace, with default settings: asks until both buckets are free
 * (no open reservation, no slot in use), then takes every slot at once and gives them back.
 */
const afterwards = async (redisUrl: string, ns: string): Promise<Afterwards> => {
  const runtime = ManagedRuntime.make(RateLimited.layer(limiter).pipe(Layer.provide(RedisBackendLive({ url: redisUrl, namespace: ns }))))
  try {
    const start = Date.now()
    let freeAfterMs: number | undefined
    let lastStatus = ""
    while (Date.now() - start <= FREE_WITHIN_MS) {
      const status = await runtime.runPromise(Effect.either(Effect.all([RateLimited.status("slots"), RateLimited.status("rate")])))
      if (status._tag === "Right") {
        const [slots, rate] = status.right
        lastStatus = `slots: open ${slots.open}, used ${slots.quotas[0]!.used}; rate: open ${rate.open}`
        if (slots.open === 0 && slots.quotas[0]!.used === 0 && rate.open === 0) {
          freeAfterMs = Date.now() - start
          break
        }
      } else lastStatus = `status failed: ${status.left._tag}`
      await sleep(100)
    }
    const taken = await runtime.runPromise(
      Effect.either(
        Effect.scoped(
          Effect.forEach(Array.from({ length: SLOTS }), () => RateLimited.reserve({ bucket: "slots" }, { maxWait: "1 second" }), {
            concurrency: "unbounded"
          })
        )
      )
    )
    return {
      freeAfterMs,
      lastStatus,
      tookAllSlots: taken._tag === "Right",
      ...(taken._tag === "Left" ? { takeAllError: `${taken.left._tag}: ${taken.left.message}` } : {})
    }
  } finally {
    await runtime.dispose()
  }
}

/** Everything a scenario observed. */
interface Run {
  readonly calls: ReadonlyArray<CallReport>
  readonly outstanding: ReadonlyArray<
    { readonly who: string; readonly bucket: string; readonly id: number; readonly submitted: number; readonly started?: number }
  >
  readonly faultFrom: number
  readonly faultTo: number
  /** The longest a call may take. */
  readonly boundMs: number
  readonly afterwards: Afterwards
  readonly concurrency: { readonly count: number; readonly at: number }
  readonly rate: { readonly count: number; readonly from: number }
}

/** Outcomes by kind and tag (`{ ok: 120, "typed BackendUnavailable": 7 }`), for messages. */
const tally = (calls: ReadonlyArray<CallReport>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const call of calls) {
    const key = call.outcome === "ok" ? "ok" : `${call.outcome} ${call.tag ?? ""}`.trim()
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}

const describeCall = (call: CallReport, origin: number) =>
  `${call.who}#${call.id} ${call.bucket} submitted +${call.submitted - origin} ms, ended +${call.ended - origin} ms` +
  (call.worked === undefined ? "" : ", work done") + `: ${call.outcome}${call.message === undefined ? "" : ` (${call.message})`}`

/** The workers used by a scenario, set up on its Redis and namespace. */
const setUp = async (using: ReadonlyArray<Worker>, redisUrl: string, ns: string, backend: BackendSettings) => {
  for (const worker of using) worker.send({ type: "setup", redisUrl, namespace: ns, limiter, backend })
  await Promise.all(using.map((worker) => worker.next("set-up", 15_000)))
}

const tearDown = async (using: ReadonlyArray<Worker>) => {
  for (const worker of using) worker.send({ type: "teardown", timeoutMs: 5_000 })
  await Promise.all(using.map((worker) => worker.next("torn-down", 10_000)))
}

/** Stops the calls, waits for them to end (at most `drainMs`), and collects them. */
const collect = async (using: ReadonlyArray<Worker>, from: Map<Worker, number>, since: number, drainMs: number) => {
  for (const worker of using) worker.send({ type: "stop", drainMs })
  const stopped = await Promise.all(using.map((worker) => worker.next("stopped", drainMs + 10_000)))
  const calls = using.flatMap((worker) => worker.all("call").slice(from.get(worker) ?? 0)).filter((call) => call.submitted >= since)
  const outstanding = using.flatMap((worker, i) => stopped[i]![0]!.outstanding.map((call) => ({ who: worker.name, ...call })))
  return { calls, outstanding }
}

/**
 * One scenario: the three workers call under `LOAD` for `warmMs` (default a second), `fault` runs (it resolves
 * once the fault is over), they go on for another second, then stop; what ran is audited, and a fresh limiter looks at the
 * buckets while the workers' limiters are still alive (disposing them must not be what frees anything).
 */
const scenario = async (options: {
  readonly redisArgs?: ReadonlyArray<string>
  readonly backend?: BackendSettings
  readonly fault: (server: RedisServer) => Promise<void>
  readonly warmMs?: number
}): Promise<Run> => {
  const server = await RedisServer.start(options.redisArgs === undefined ? {} : { args: options.redisArgs })
  try {
    const ns = namespace()
    await setUp(workers, server.url, ns, options.backend ?? {})
    const from = new Map(workers.map((worker) => [worker, worker.all("call").length]))
    const audited = auditServer()
    audited.reset()
    const since = Date.now()
    for (const worker of workers) worker.send({ type: "run", load: LOAD, pauseAfterFailureMs: 50 })
    await sleep(options.warmMs ?? 1_000)
    const faultFrom = Date.now()
    await options.fault(server)
    const faultTo = Date.now()
    await sleep(1_000)
    const boundMs = faultTo - faultFrom + MARGIN_MS
    const { calls, outstanding } = await collect(workers, from, since, boundMs)
    const after = await afterwards(server.url, ns)
    await tearDown(workers)
    const run: Run = {
      calls,
      outstanding,
      faultFrom,
      faultTo,
      boundMs,
      afterwards: after,
      concurrency: audited.peak("slots"),
      rate: audited.maxInWindow("rate", RATE_WINDOW_MS)
    }
    const firstAfter = Math.min(...calls.flatMap((call) => (call.started !== undefined && call.started > faultTo ? [call.started] : [])))
    console.log(
      `fault from +${faultFrom - since} to +${faultTo - since} ms (first call started ${firstAfter - faultTo} ms after it): ` +
        `${calls.length} calls ${JSON.stringify(tally(calls))}, ` +
        `${outstanding.length} still running; at most ${run.concurrency.count} at once on slots, ${run.rate.count} in a window on rate; ` +
        `after: ${after.freeAfterMs === undefined ? `not free within ${FREE_WITHIN_MS} ms (${after.lastStatus})` : `free in ${after.freeAfterMs} ms`}, ` +
        `all ${SLOTS} slots ${after.tookAllSlots ? "taken" : `not taken (${after.takeAllError})`}`
    )
    return run
  } finally {
    await server.close()
  }
}

const redisCli = async (server: RedisServer, ...args: ReadonlyArray<string>) => {
  const answer = (await server.cli(...args)).trim()
  // A fault that was not applied would make the scenario test nothing.
  assert.strictEqual(answer, "OK", `redis-cli ${args.join(" ")}`)
}

// The assertions, shared by the scenarios.

const everyCallEndsInTime = (run: Run) => {
  const origin = run.faultFrom
  assert.deepStrictEqual(
    run.outstanding.map((call) =>
      `${call.who}#${call.id} ${call.bucket} submitted +${call.submitted - origin} ms, ` +
      (call.started === undefined ? "waiting for admission" : `running since +${call.started - origin} ms`)
    ),
    [],
    `calls still running ${run.boundMs} ms after the workers stopped calling (${JSON.stringify(tally(run.calls))})`
  )
  const late = run.calls.filter((call) => call.ended - call.submitted > run.boundMs)
  assert.deepStrictEqual(late.slice(0, 5).map((call) => describeCall(call, origin)), [], `${late.length} calls took longer than ${run.boundMs} ms`)
  const bad = run.calls.filter((call) => call.outcome !== "ok" && call.outcome !== "typed")
  assert.deepStrictEqual(
    bad.slice(0, 5).map((call) => describeCall(call, origin)),
    [],
    `${bad.length} calls ended with neither their result nor a typed error: ${JSON.stringify(tally(bad))}`
  )
  const wrong = run.calls.filter((call) => call.outcome === "ok" && call.value !== call.expected)
  assert.deepStrictEqual(wrong.slice(0, 5).map((call) => describeCall(call, origin)), [], "calls that returned something else than their work's result")
  assert.isAbove(run.calls.filter((call) => call.outcome === "ok").length, 50, "the load ran")
}

const neverMoreThanTheSlots = (run: Run) =>
  assert.isAtMost(
    run.concurrency.count,
    SLOTS,
    `${run.concurrency.count} calls ran at once on a concurrency quota of ${SLOTS}, at +${run.concurrency.at - run.faultFrom} ms from the fault`
  )

const neverMoreThanTheRate = (run: Run) =>
  assert.isAtMost(
    run.rate.count,
    RATE,
    `${run.rate.count} calls reached the provider within ${RATE_WINDOW_MS} ms on a quota of ${RATE}, from +${run.rate.from - run.faultFrom} ms from the fault`
  )

const nothingHeldAfter = (run: Run) => {
  assert.isDefined(run.afterwards.freeAfterMs, `not free ${FREE_WITHIN_MS} ms after the calls ended: ${run.afterwards.lastStatus}`)
  assert.isTrue(run.afterwards.tookAllSlots, `a fresh limiter could not take all ${SLOTS} slots: ${run.afterwards.takeAllError}`)
}

const workDoneReturnsItsResult = (run: Run) => {
  const lost = run.calls.filter((call) => call.worked !== undefined && call.outcome !== "ok")
  assert.deepStrictEqual(
    lost.slice(0, 5).map((call) => describeCall(call, run.faultFrom)),
    [],
    `${lost.length} calls whose work succeeded did not return its result: ${JSON.stringify(tally(lost))}`
  )
}

/** The four properties every fault must keep, as tests of one scenario. */
const contract = (get: () => Run) => {
  it("every call ends within the fault's duration + 3 s, with its result or a typed error", () => everyCallEndsInTime(get()))
  it(`never more than ${SLOTS} calls at once on the concurrency quota, across the 3 processes`, () => neverMoreThanTheSlots(get()))
  it(`never more than ${RATE} calls in any ${RATE_WINDOW_MS} ms on the rate quota, across the 3 processes`, () =>
    neverMoreThanTheRate(get()))
  it(`nothing is held after: both buckets free within ${FREE_WITHIN_MS / 1000} s, and a fresh limiter takes all ${SLOTS} slots`, () =>
    nothingHeldAfter(get()))
}

/**
 * What a fault that loses Redis's state must keep. Not the limits: whatever Redis forgot (the calls still running,
 * the window's history) it admits again, until the lost window has passed; the README says so.
 */
const contractAfterLoss = (get: () => Run) => {
  it("every call ends within the fault's duration + 3 s, with its result or a typed error", () => everyCallEndsInTime(get()))
  it(`nothing is held after: both buckets free within ${FREE_WITHIN_MS / 1000} s, and a fresh limiter takes all ${SLOTS} slots`, () =>
    nothingHeldAfter(get()))
  it("every call whose work succeeded returns its result", () => workDoneReturnsItsResult(get()))
}

/** A scenario run once for the tests of its describe block. */
const scenarioOnce = (options: Parameters<typeof scenario>[0]) => {
  let run: Run | undefined
  beforeAll(async () => {
    run = await scenario(options)
  }, 60_000)
  return (): Run => {
    if (run === undefined) throw new Error("the scenario did not run")
    return run
  }
}

// A reserve that times out for its caller still runs when Redis answers again: it books a slot nobody
// releases. The pause is longer than the command timeout, so that reserves do time out.
describe("CLIENT PAUSE 2000 ALL with a 300 ms command timeout", () => {
  const run = scenarioOnce({
    backend: { commandTimeoutMs: COMMAND_TIMEOUT_MS },
    fault: async (server) => {
      await redisCli(server, "client", "pause", "2000", "all")
      await sleep(2_000)
    }
  })
  contract(run)
})

// The same as a pause, from inside the server: it runs nothing for 2 s, then everything it was sent.
describe("DEBUG SLEEP 2 with a 300 ms command timeout", () => {
  const run = scenarioOnce({
    // Redis 7 refuses DEBUG unless this allows it.
    redisArgs: ["--enable-debug-command", "local"],
    backend: { commandTimeoutMs: COMMAND_TIMEOUT_MS },
    fault: (server) => redisCli(server, "debug", "sleep", "2")
  })
  contract(run)
})

// Every library call may write, so Redis refuses each one while it is out of memory: reserves and settles
// alike. A settle refused is a slot held until someone closes it.
describe("out of memory (maxmemory 1, noeviction) for 1.5 s", () => {
  const run = scenarioOnce({
    fault: async (server) => {
      await redisCli(server, "config", "set", "maxmemory-policy", "noeviction")
      await redisCli(server, "config", "set", "maxmemory", "1")
      await sleep(1_500)
      await redisCli(server, "config", "set", "maxmemory", "0")
    }
  })
  contract(run)
})

/**
 * The rate quota's sliding window admits in bursts: 20 calls at once when a window opens (at the start, then
 * every 1.25 s, window and skew), none until the next. A fault that loses Redis's state 1.4 s in comes just after
 * the second burst, while those calls are still in the provider's window: what Redis forgot is there to be
 * over-admitted, rather than the fault falling where the window had emptied anyway.
 */
const AFTER_A_BURST_MS = 1_400

// Every open reservation is gone at once, while the calls they admitted run: their settles find nothing.
describe("FLUSHALL mid-run", () => {
  const run = scenarioOnce({ warmMs: AFTER_A_BURST_MS, fault: (server) => redisCli(server, "flushall") })
  contractAfterLoss(run)
})

// The keys stay; the library is gone, twice: the backend loads it again and carries on.
describe("FUNCTION FLUSH twice mid-run", () => {
  const run = scenarioOnce({
    fault: async (server) => {
      await redisCli(server, "function", "flush")
      await sleep(500)
      await redisCli(server, "function", "flush")
    }
  })
  contract(run)
  it("every call succeeds: reloading the library is invisible to the callers", () => {
    const failed = run().calls.filter((call) => call.outcome !== "ok")
    assert.deepStrictEqual(
      failed.slice(0, 5).map((call) => describeCall(call, run().faultFrom)),
      [],
      `${failed.length} calls failed: ${JSON.stringify(tally(failed))}`
    )
  })
})

// Killed (connections refused, calls fail with BackendUnavailable meanwhile), then back empty on the same port.
describe("redis-server killed (SIGKILL) and started again 300 ms later, empty", () => {
  const run = scenarioOnce({
    warmMs: AFTER_A_BURST_MS,
    fault: async (server) => {
      await server.stop()
      await sleep(300)
      await server.restart()
    }
  })
  contractAfterLoss(run)
})

// Last: it kills one of the workers.
describe("one of the 3 worker processes killed with SIGKILL while it holds 2 slots (reservationTtl 2 s)", () => {
  const reservationTtlMs = 2_000
  let observed:
    | {
      readonly calls: ReadonlyArray<CallReport>
      readonly outstanding: ReadonlyArray<unknown>
      readonly heldAt: number
      readonly killedAt: number
      readonly afterwards: Afterwards
      readonly peak: { readonly count: number; readonly at: number }
      readonly backAt: number | undefined
    }
    | undefined

  beforeAll(async () => {
    const server = await RedisServer.start()
    try {
      const ns = namespace()
      const [a, b, victim] = workers as [Worker, Worker, Worker]
      const survivors = [a, b]
      await setUp(workers, server.url, ns, { reservationTtlMs })
      const from = new Map(survivors.map((worker) => [worker, worker.all("call").length]))
      const audited = auditServer()
      audited.reset()
      victim.send({ type: "hold", bucket: "slots", count: 2 })
      const held = await victim.next("held", 5_000, 2)
      const heldAt = Math.max(...held.map((h) => h.at))
      const since = Date.now()
      for (const worker of survivors) worker.send({ type: "run", load: [LOAD[0]!], pauseAfterFailureMs: 50 })
      await sleep(700)
      await victim.kill("SIGKILL")
      const killedAt = Date.now()
      // Until well past the expiry of the dead process's reservations.
      await sleep(heldAt + reservationTtlMs + 2_000 - Date.now())
      const { calls, outstanding } = await collect(survivors, from, since, MARGIN_MS)
      const after = await afterwards(server.url, ns)
      await tearDown(survivors)
      // When the survivors first had all the slots again.
      const back = audited.arrivalsOf("slots").find((arrival) => arrival.at > killedAt && arrival.inFlight === SLOTS)
      observed = { calls, outstanding, heldAt, killedAt, afterwards: after, peak: audited.peak("slots"), backAt: back?.at }
      console.log(
        `worker killed ${killedAt - heldAt} ms after it took 2 slots; survivors: ${calls.length} calls ${JSON.stringify(tally(calls))}; ` +
          `all ${SLOTS} slots in use again ${back === undefined ? "never" : `${back.at - heldAt} ms after they were taken`}; ` +
          `at most ${observed.peak.count} at once`
      )
    } finally {
      await server.close()
    }
  }, 60_000)

  const get = () => {
    if (observed === undefined) throw new Error("the scenario did not run")
    return observed
  }

  it("the other processes carry on: every call of theirs succeeds, within 3 s, and they keep calling meanwhile", () => {
    const { calls, heldAt, killedAt, outstanding } = get()
    assert.deepStrictEqual(outstanding, [], "calls still running")
    const failed = calls.filter((call) => call.outcome !== "ok" || call.value !== call.expected)
    assert.deepStrictEqual(failed.slice(0, 5).map((call) => describeCall(call, killedAt)), [], `${failed.length} calls failed`)
    const late = calls.filter((call) => call.ended - call.submitted > MARGIN_MS)
    assert.deepStrictEqual(late.slice(0, 5).map((call) => describeCall(call, killedAt)), [], "calls that took longer than 3 s")
    // On the 3 slots the dead process does not hold: about 30 calls a second.
    const meanwhile = calls.filter((call) => call.ended > killedAt && call.ended < heldAt + reservationTtlMs).length
    assert.isAtLeast(meanwhile, 10, "calls that ended between the kill and the expiry of the dead process's reservations")
  })

  it(`never more than ${SLOTS} calls at once`, () => assert.isAtMost(get().peak.count, SLOTS))

  it("the dead process's slots come back once its reservations expire: all 5 in use again within reservationTtl + 1.5 s", () => {
    const { backAt, heldAt } = get()
    assert.isDefined(backAt, "the survivors never had all the slots again")
    assert.isAtMost(backAt! - heldAt, reservationTtlMs + 1_500)
  })

  it(`nothing is held after: both buckets free within ${FREE_WITHIN_MS / 1000} s, and a fresh limiter takes all ${SLOTS} slots`, () => {
    const { afterwards: after } = get()
    assert.isDefined(after.freeAfterMs, `not free: ${after.lastStatus}`)
    assert.isTrue(after.tookAllSlots, after.takeAllError)
  })
})

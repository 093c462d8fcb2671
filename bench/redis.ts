/**
 * Admissions through Redis on loopback, side by side in one run, at 1, 16 and 64 concurrent callers:
 *
 * - quotaflow: `RedisBackend.make` -> `reserve` + `settle` per call (two calls of its function library, FCALL);
 * - ceiling: the same number of ioredis callers, each call two trivial EVALSHAs (`return 1`); and for reference
 *   the same with the writes corked as quotaflow's store corks them;
 * - rate-limiter-flexible: `RateLimiterRedis.consume` per call on an ioredis client;
 * - bottleneck: clustering mode (`datastore: "ioredis"`), `schedule` per call;
 *
 * every limit far above what the run can use, so that none ever binds. Then `redis-benchmark -t ping` for
 * reference. Starts its own redis-server on a free loopback port and stops it at the end.
 *
 *   npx tsx bench/redis.ts
 *
 * BENCH_SECONDS (default 2): length of each measurement; BENCH_ROUNDS (default 2): measurements per cell, the
 * best one is shown (the rounds are interleaved, so a burst of load elsewhere does not hit one contender only);
 * BENCH_BASELINE: path of another `src/Backend/Redis.ts` (an older checkout) to measure next to this one.
 *
 * Besides calls/s and latency, each row shows what a call costs: Redis commands per call, Redis CPU and this
 * process's CPU per call (µs, from `INFO cpu` and `process.cpuUsage`), and the server's `usec_per_call` of its
 * script calls (FCALL, EVALSHA).
 */
import { execFile } from "node:child_process"
import { cpus } from "node:os"
import { performance } from "node:perf_hooks"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import Bottleneck from "bottleneck"
import { Effect, Exit, Scope } from "effect"
import { Redis } from "ioredis"
import { RateLimiterRedis } from "rate-limiter-flexible"
import type { BackendService } from "../src/Backend.js"
import * as RedisBackend from "../src/Backend/Redis.js"
import type { Bucket } from "../src/Quota.js"
import { RedisServer } from "../test/support/redisServer.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2))
const BASELINE = process.env.BENCH_BASELINE
const LEVELS = [1, 16, 64] as const

const bucket: Bucket = {
  name: "bench",
  quotas: [
    { metric: "requests", limit: 1_000_000_000, windowMs: 60_000, algorithm: "token-bucket", refunds: true },
    { metric: "tokens", limit: 1_000_000_000_000, windowMs: 60_000, algorithm: "token-bucket", refunds: true }
  ],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: Number.MAX_SAFE_INTEGER
}

interface Measured {
  readonly calls: number
  readonly elapsedMs: number
  readonly latencies: Array<number>
  readonly commands: number
  readonly scripts: number
  readonly scriptUsec: number
  readonly redisCpuUs: number
  readonly clientCpuUs: number
}

interface Result {
  readonly callsPerSecond: number
  readonly scriptsPerSecond: number
  readonly p50: number
  readonly p99: number
  /** Redis commands (a script counts as one) per call. */
  readonly commandsPerCall: number
  /** Server time per script call (`usec_per_call` of FCALL/EVALSHA/EVAL). */
  readonly scriptUsec: number
  readonly redisCpuPerCall: number
  readonly clientCpuPerCall: number
}

const summarize = (m: Measured): Result => {
  const sorted = m.latencies.sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
  return {
    callsPerSecond: (m.calls / m.elapsedMs) * 1000,
    scriptsPerSecond: (m.scripts / m.elapsedMs) * 1000,
    p50: at(0.5),
    p99: at(0.99),
    commandsPerCall: m.commands / m.calls,
    scriptUsec: m.scriptUsec,
    redisCpuPerCall: m.redisCpuUs / m.calls,
    clientCpuPerCall: m.clientCpuUs / m.calls
  }
}

/** One call of a contender: resolves when the admission (and its settle, where there is one) is done. */
type Call = () => Promise<unknown>

/** `callers` loops of `call` for `SECONDS`. */
const drive = async (call: Call, callers: number, seconds: number): Promise<{ calls: number; elapsedMs: number; latencies: Array<number> }> => {
  const latencies: Array<number> = []
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t = performance.now()
        await call()
        latencies.push(performance.now() - t)
      }
    })
  )
  return { calls: latencies.length, elapsedMs: performance.now() - start, latencies }
}

/** `callers` fibers looping reserve + settle through the backend for `seconds`, in one Effect run. */
const driveBackend = (backend: BackendService, callers: number, seconds: number) => {
  const latencies: Array<number> = []
  const loop = (end: number) =>
    Effect.gen(function*() {
      while (performance.now() < end) {
        const t = performance.now()
        const result = yield* backend.reserve(bucket, [1, 1200], 0)
        if (result._tag !== "Reserved") return yield* Effect.dieMessage(`unexpected ${JSON.stringify(result)}`)
        yield* backend.settle(bucket, result.reservation.id, [undefined, 800])
        latencies.push(performance.now() - t)
      }
    })
  return Effect.runPromise(
    Effect.suspend(() => {
      const start = performance.now()
      const end = start + seconds * 1000
      return Effect.forEach(Array.from({ length: callers }), () => loop(end), { concurrency: "unbounded", discard: true }).pipe(
        Effect.map(() => ({ calls: latencies.length, elapsedMs: performance.now() - start, latencies }))
      )
    })
  )
}

interface Contender {
  readonly name: string
  /** Script calls per call, for the script calls/s column (bottleneck: counted from the server instead). */
  readonly scriptsPerCall?: number
  readonly run: (callers: number, seconds: number) => Promise<{ calls: number; elapsedMs: number; latencies: Array<number> }>
  readonly close: () => Promise<void>
}

const statsOf = (info: string) => {
  let commands = 0
  let scripts = 0
  let scriptUsec = 0
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    const [name, calls, usec] = [match[1], Number(match[2]), Number(match[3])]
    if (name === "info" || name.startsWith("config")) continue
    commands += calls
    if (name === "fcall" || name === "evalsha" || name === "eval") {
      scripts += calls
      scriptUsec += usec
    }
  }
  return { commands, scripts, scriptUsec: scripts > 0 ? scriptUsec / scripts : NaN }
}

const cpuSeconds = (info: string): number =>
  Number(info.match(/used_cpu_user:([\d.]+)/)?.[1] ?? NaN) + Number(info.match(/used_cpu_sys:([\d.]+)/)?.[1] ?? NaN)

/** Runs one contender at one level and reads what it cost on both sides. */
const measure = async (stats: Redis, contender: Contender, callers: number): Promise<Result> => {
  await stats.config("RESETSTAT")
  const redisCpuBefore = cpuSeconds(String(await stats.info("cpu")))
  const clientBefore = process.cpuUsage()
  const run = await contender.run(callers, SECONDS)
  const client = process.cpuUsage(clientBefore)
  const redisCpuAfter = cpuSeconds(String(await stats.info("cpu")))
  const server = statsOf(String(await stats.info("commandstats")))
  return summarize({
    ...run,
    commands: server.commands,
    scripts: contender.scriptsPerCall === undefined ? server.scripts : run.calls * contender.scriptsPerCall,
    scriptUsec: server.scriptUsec,
    redisCpuUs: (redisCpuAfter - redisCpuBefore) * 1e6,
    clientCpuUs: client.user + client.system
  })
}

const quotaflowContender = async (
  name: string,
  make: typeof RedisBackend.make,
  url: string,
  namespace: string
): Promise<Contender> => {
  const scope = Effect.runSync(Scope.make())
  const backend = await Effect.runPromise(Scope.extend(make({ url, namespace }), scope))
  return {
    name,
    scriptsPerCall: 2,
    run: (callers, seconds) => driveBackend(backend, callers, seconds),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const connected = async (port: number): Promise<Redis> => {
  const client = new Redis(port, { host: "127.0.0.1", lazyConnect: true })
  await client.connect()
  return client
}

/**
 * The trivial-EVALSHA ceiling. `corked`: the writes of one tick leave eight at a time in one system call, as
 * quotaflow's store sends its commands (see `cork` in `src/internal/redis/store.ts`); a reference only, the
 * ratios are to the plain one.
 */
const ceilingContender = async (port: number, corked: boolean, fcall = false): Promise<Contender> => {
  const client = await connected(port)
  const sha = String(await client.script("LOAD", "return 1"))
  if (fcall) await client.call("FUNCTION", "LOAD", "REPLACE", "#!lua name=bench_ceiling\nredis.register_function('bench_trivial', function() return 1 end)")
  let held = false
  let batched = 0
  const cork = () => {
    if (held) {
      if (++batched >= 8) {
        client.stream.uncork()
        client.stream.cork()
        batched = 0
      }
      return
    }
    held = true
    batched = 0
    client.stream.cork()
    process.nextTick(() => {
      held = false
      client.stream.uncork()
    })
  }
  const send = fcall ? () => client.fcall("bench_trivial", 0) : () => client.evalsha(sha, 0)
  const evalsha = corked ? () => (cork(), send()) : send
  return {
    name: fcall ? "ceiling, FCALL" : corked ? "ceiling, corked writes" : "ceiling (2 x EVALSHA)",
    scriptsPerCall: 2,
    run: (callers, seconds) =>
      drive(async () => {
        await evalsha()
        await evalsha()
      }, callers, seconds),
    close: async () => void (await client.quit())
  }
}

const rateLimiterFlexibleContender = async (port: number): Promise<Contender> => {
  const client = await connected(port)
  const limiter = new RateLimiterRedis({ storeClient: client, keyPrefix: "bench-rlf", points: 1_000_000_000, duration: 60 })
  return {
    name: "rate-limiter-flexible",
    scriptsPerCall: 1,
    run: (callers, seconds) => drive(() => limiter.consume("bench", 1), callers, seconds),
    close: async () => void (await client.quit())
  }
}

const bottleneckContender = async (port: number): Promise<Contender> => {
  const limiter = new Bottleneck({
    datastore: "ioredis",
    clientOptions: { host: "127.0.0.1", port },
    id: "bench-bottleneck",
    clearDatastore: true,
    // A reservoir of a billion a minute, like the quota above: it never runs dry in a run.
    reservoir: 1_000_000_000,
    reservoirRefreshAmount: 1_000_000_000,
    reservoirRefreshInterval: 60_000,
    maxConcurrent: null,
    minTime: 0
  })
  limiter.on("error", (error: unknown) => console.error("bottleneck:", error))
  await limiter.ready()
  const job = () => Promise.resolve(1)
  return {
    name: "bottleneck (clustering)",
    run: (callers, seconds) => drive(() => limiter.schedule(job), callers, seconds),
    close: () => limiter.disconnect(true)
  }
}

const redisBenchmark = async (port: number, clients: number): Promise<string> => {
  try {
    const { stdout } = await promisify(execFile)("redis-benchmark", [
      "-h", "127.0.0.1", "-p", String(port), "-q", "-t", "ping", "-c", String(clients), "-n", "100000"
    ])
    return stdout.split("\r").pop()?.trim().replace(/\n/g, "; ") ?? ""
  } catch (error) {
    return `redis-benchmark failed: ${error instanceof Error ? error.message : String(error)}`
  }
}

const pad = (text: string, width: number) => text.padStart(width)
const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-")
const percent = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : "-")

const main = async () => {
  const server = await RedisServer.start()
  const stats = await connected(server.port)
  const contenders: Array<Contender> = []
  try {
    contenders.push(await quotaflowContender("quotaflow", RedisBackend.make, server.url, "bench"))
    if (BASELINE !== undefined) {
      const before = (await import(pathToFileURL(BASELINE).href)) as typeof RedisBackend
      contenders.push(await quotaflowContender("quotaflow (baseline)", before.make, server.url, "bench-baseline"))
    }
    const ceiling = await ceilingContender(server.port, false)
    contenders.push(ceiling)
    contenders.push(await ceilingContender(server.port, false, true))
    contenders.push(await ceilingContender(server.port, true))
    contenders.push(await rateLimiterFlexibleContender(server.port))
    const bottleneck = await bottleneckContender(server.port)
    contenders.push(bottleneck)

    // Warm up every path (JIT, connections, script caches).
    for (const contender of contenders) await contender.run(16, Math.min(1, SECONDS))

    const best = new Map<string, Result>()
    const key = (contender: Contender, callers: number) => `${contender.name}@${callers}`
    for (let round = 0; round < ROUNDS; round++) {
      for (const callers of LEVELS) {
        for (const contender of contenders) {
          const result = await measure(stats, contender, callers)
          const previous = best.get(key(contender, callers))
          if (previous === undefined || result.callsPerSecond > previous.callsPerSecond) best.set(key(contender, callers), result)
        }
      }
    }

    const version = String(await stats.info("server")).match(/redis_version:(\S+)/)?.[1] ?? "?"
    console.log(`Admissions through Redis on loopback: redis ${version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`)
    console.log(`each cell: best of ${ROUNDS} x ${SECONDS} s; one ioredis connection per contender (bottleneck: plus its subscriber)`)
    console.log(`call: quotaflow reserve + settle (2 FCALLs); ceiling 2 trivial EVALSHAs (or FCALLs); rate-limiter-flexible consume (1 script); bottleneck schedule`)
    console.log(`scripts/s: script calls per second; vs ceil: scripts/s over the ceiling's; vs btl: calls/s over bottleneck's`)
    console.log(`latency in ms per call; cmd/call: Redis commands per call; usec/script: server time per script call;`)
    console.log(`redis µs, client µs: CPU per call in redis-server and in this process`)
    console.log("")
    const header = [
      "contender".padEnd(24), pad("callers", 7), pad("calls/s", 9), pad("scripts/s", 10), pad("p50", 7), pad("p99", 7),
      pad("vs ceil", 8), pad("vs btl", 7), pad("cmd/call", 8), pad("usec/script", 11), pad("redis µs", 9), pad("client µs", 9)
    ].join(" ")
    console.log(header)
    for (const callers of LEVELS) {
      const ceilingResult = best.get(key(ceiling, callers))!
      const bottleneckResult = best.get(key(bottleneck, callers))!
      for (const contender of contenders) {
        const r = best.get(key(contender, callers))!
        console.log([
          contender.name.padEnd(24),
          pad(String(callers), 7),
          pad(fixed(r.callsPerSecond, 0), 9),
          pad(fixed(r.scriptsPerSecond, 0), 10),
          pad(fixed(r.p50, 3), 7),
          pad(fixed(r.p99, 3), 7),
          pad(percent(r.scriptsPerSecond / ceilingResult.scriptsPerSecond), 8),
          pad(`${fixed(r.callsPerSecond / bottleneckResult.callsPerSecond, 1)}x`, 7),
          pad(fixed(r.commandsPerCall, 1), 8),
          pad(fixed(r.scriptUsec, 1), 11),
          pad(fixed(r.redisCpuPerCall, 1), 9),
          pad(fixed(r.clientCpuPerCall, 1), 9)
        ].join(" "))
      }
      console.log("")
    }
    for (const clients of LEVELS) {
      console.log(`redis-benchmark -q -t ping -c ${clients} -n 100000: ${await redisBenchmark(server.port, clients)}`)
    }
  } finally {
    for (const contender of contenders) await contender.close().catch(() => undefined)
    await stats.quit().catch(() => "closed")
    await server.close()
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)

/**
 * Throughput and latency of the Redis backend on loopback: reserve + settle (two round trips) at 1, 16 and 64
 * concurrent callers, next to the ceiling: as many ioredis callers each sending two trivial EVALSHAs that
 * return at once. Starts its own redis-server.
 *
 *   npx tsx bench/redis.ts            (BENCH_SECONDS=2 by default per measurement)
 */
import { execFile } from "node:child_process"
import { cpus } from "node:os"
import { performance } from "node:perf_hooks"
import { promisify } from "node:util"
import { Effect, Exit, Scope } from "effect"
import { Redis } from "ioredis"
import type { BackendService } from "../src/Backend.js"
import * as RedisBackend from "../src/Backend/Redis.js"
import type { Bucket } from "../src/Quota.js"
import { RedisServer } from "../test/support/redisServer.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const LEVELS = [1, 16, 64]

const bucket: Bucket = {
  name: "bench",
  quotas: [
    { metric: "requests", limit: 1_000_000_000, windowMs: 60_000, algorithm: "token-bucket", refunds: true },
    { metric: "tokens", limit: 1_000_000_000_000, windowMs: 60_000, algorithm: "token-bucket", refunds: true }
  ],
  safetyRatio: 1,
  burstMultiplier: 1,
  maxQueue: Number.MAX_SAFE_INTEGER
}

interface Result {
  readonly callsPerSecond: number
  readonly p50: number
  readonly p99: number
}

const summarize = (latencies: Array<number>, elapsedMs: number): Result => {
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
  return { callsPerSecond: (latencies.length / elapsedMs) * 1000, p50: at(0.5), p99: at(0.99) }
}

/** `callers` loops of reserve + settle through the backend for `SECONDS`. */
const runBackend = (backend: BackendService, callers: number): Promise<Result> => {
  const latencies: Array<number> = []
  const loop = (end: number) =>
    Effect.gen(function*() {
      while (performance.now() < end) {
        const start = performance.now()
        const result = yield* backend.reserve(bucket, [1, 1200], 0)
        if (result._tag !== "Reserved") return yield* Effect.dieMessage(`unexpected ${JSON.stringify(result)}`)
        yield* backend.settle(bucket, result.reservation.id, [undefined, 800])
        latencies.push(performance.now() - start)
      }
    })
  return Effect.runPromise(
    Effect.suspend(() => {
      const start = performance.now()
      const end = start + SECONDS * 1000
      return Effect.forEach(Array.from({ length: callers }), () => loop(end), { concurrency: "unbounded", discard: true }).pipe(
        Effect.map(() => summarize(latencies, performance.now() - start))
      )
    })
  )
}

/** `callers` loops of two trivial EVALSHAs on one ioredis connection for `SECONDS`. */
const runCeiling = async (client: Redis, sha: string, callers: number): Promise<Result> => {
  const latencies: Array<number> = []
  const start = performance.now()
  const end = start + SECONDS * 1000
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t = performance.now()
        await client.evalsha(sha, 0)
        await client.evalsha(sha, 0)
        latencies.push(performance.now() - t)
      }
    })
  )
  return summarize(latencies, performance.now() - start)
}

const redisBenchmark = async (port: number, clients: number): Promise<string> => {
  try {
    const { stdout } = await promisify(execFile)("redis-benchmark", [
      "-h", "127.0.0.1", "-p", String(port), "-t", "ping", "-n", "100000", "-c", String(clients), "-q"
    ])
    return stdout.split("\r").pop()?.trim().replace(/\n/g, "; ") ?? ""
  } catch {
    return "redis-benchmark not available"
  }
}

const pad = (text: string, width: number) => text.padStart(width)
const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-")

const main = async () => {
  const server = await RedisServer.start()
  const scope = Effect.runSync(Scope.make())
  const client = new Redis(server.port, { host: "127.0.0.1", lazyConnect: true })
  try {
    const backend = await Effect.runPromise(Scope.extend(RedisBackend.make({ url: server.url, namespace: "bench" }), scope))
    await client.connect()
    const sha = String(await client.script("LOAD", "return 1"))

    // Warm up both paths (JIT, connections, script caches).
    await runBackend(backend, 16)
    await runCeiling(client, sha, 16)

    const rows: Array<string> = []
    for (const callers of LEVELS) {
      const quotaflow = await runBackend(backend, callers)
      const ceiling = await runCeiling(client, sha, callers)
      rows.push(
        [
          pad(String(callers), 7),
          pad(fixed(quotaflow.callsPerSecond, 0), 12),
          pad(fixed(quotaflow.p50, 3), 9),
          pad(fixed(quotaflow.p99, 3), 9),
          pad(fixed(ceiling.callsPerSecond, 0), 12),
          pad(fixed(ceiling.p50, 3), 9),
          pad(fixed(ceiling.p99, 3), 9),
          pad(`${fixed((quotaflow.callsPerSecond / ceiling.callsPerSecond) * 100, 0)}%`, 8)
        ].join(" ")
      )
    }

    const version = String(await client.info("server")).match(/redis_version:(\S+)/)?.[1] ?? "?"
    console.log(`Redis backend on loopback: redis ${version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`)
    console.log(`call = reserve + settle (2 EVALSHA round trips); ceiling call = 2 trivial EVALSHAs ("return 1")`)
    console.log(`each cell: ${SECONDS} s; one ioredis connection per side; latency in ms per call`)
    console.log("")
    console.log(`${pad("callers", 7)} ${pad("quotaflow/s", 12)} ${pad("p50", 9)} ${pad("p99", 9)} ${pad("ceiling/s", 12)} ${pad("p50", 9)} ${pad("p99", 9)} ${pad("of ceil", 8)}`)
    for (const row of rows) console.log(row)
    console.log("")
    for (const clients of LEVELS) {
      console.log(`redis-benchmark -t ping -c ${clients}: ${await redisBenchmark(server.port, clients)}`)
    }
  } finally {
    await client.quit().catch(() => "closed")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await server.close()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})

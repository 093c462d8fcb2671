/**
 * Two processes on one quota through Redis: each sends five calls at once to a bucket of 6 requests a minute,
 * with `maxWait: "1 second"`. Between them exactly six are admitted; the other four fail at once with
 * `CapacityExceeded`, since the next request comes back only after 10 seconds. Neither process knows how many
 * calls the other sends: the quota lives in Redis, and each admission is one atomic call there.
 *
 * Needs a Redis (or Valkey) at REDIS_URL, by default redis://127.0.0.1:6379.
 * Run: npx tsx examples/redis-two-processes.ts
 */
import { fork } from "node:child_process"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { CapacityExceeded, createRateLimiter } from "quotaflow"

interface Outcome {
  readonly admitted: number
  readonly refused: number
}

const redis = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

const worker = async (namespace: string): Promise<Outcome> => {
  const limiter = createRateLimiter({
    buckets: { chat: { quotas: [{ metric: "requests", limit: 6, window: "1 minute" }] } },
    backend: { redis, namespace }
  })
  try {
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        limiter.submit({ bucket: "chat" }, async () => "ok", { maxWait: "1 second" }).catch((error: unknown) => error))
    )
    const refused = results.filter((result) => result instanceof CapacityExceeded).length
    const admitted = results.filter((result) => result === "ok").length
    if (admitted + refused !== results.length) throw new Error(`unexpected failure: ${results.find((r) => r !== "ok")}`)
    return { admitted, refused }
  } finally {
    await limiter.close()
  }
}

// Runs this file again as a worker, and resolves with what it reports.
const spawnWorker = (namespace: string): Promise<Outcome> =>
  new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ["worker", namespace], { stdio: "inherit" })
    let outcome: Outcome | undefined
    child.on("message", (message: Outcome) => (outcome = message))
    child.on("error", reject)
    child.on("exit", (code) => (outcome !== undefined && code === 0 ? resolve(outcome) : reject(new Error(`worker exited with ${code}`))))
  })

if (process.argv[2] === "worker") {
  const outcome = await worker(process.argv[3])
  process.send?.(outcome)
} else {
  // A namespace of its own, so that a run never meets the state an earlier one left in Redis.
  const namespace = `example-${randomUUID()}`
  const outcomes = await Promise.all([spawnWorker(namespace), spawnWorker(namespace)])
  const admitted = outcomes.reduce((sum, outcome) => sum + outcome.admitted, 0)
  const refused = outcomes.reduce((sum, outcome) => sum + outcome.refused, 0)
  console.log(`admitted ${outcomes.map((o) => o.admitted).join(" + ")} = ${admitted}, refused ${refused}`)
  if (admitted !== 6 || refused !== 4) throw new Error("expected exactly the quota's 6 calls admitted between the two processes")
}

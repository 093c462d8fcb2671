/**
 * One waiting line across processes: four worker processes (`worker.ts`) share one token bucket through Redis,
 * with default settings. A large call submitted first in one process is admitted before the small calls the
 * others submit after it, although each of those would fit sooner; and room one process makes reaches a waiter
 * in another within milliseconds, not at its next poll.
 */
import { Effect, Exit, Scope } from "effect"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "vitest"
import * as Emulator from "../../src/emulator/Emulator.js"
import type { LimiterConfig } from "../../src/Quota.js"
import { RedisServer } from "../support/redisServer.js"
import { Child, stopAll } from "./children.js"

let redis: RedisServer | undefined
let emulator: Emulator.RunningEmulator | undefined
const emulatorScope = Effect.runSync(Scope.make())
const children = new Set<Child>()
let runs = 0

beforeAll(async () => {
  redis = await RedisServer.start()
  // The workers check that it answers at start; these tests send it nothing.
  emulator = await Effect.runPromise(Scope.extend(Emulator.serve({ style: "openai", windowMs: 60_000, limits: { requests: 1_000_000 } }, { port: 0 }), emulatorScope))
})

afterEach(async () => {
  await stopAll(children)
  children.clear()
}, 20_000)

afterAll(async () => {
  await stopAll(children)
  await Effect.runPromise(Scope.close(emulatorScope, Exit.void))
  await redis?.close()
}, 20_000)

/** 1,000 tokens a second, in a bucket of 1,000. */
const limiter: LimiterConfig = {
  buckets: { chat: { quotas: [{ metric: "tokens", limit: 1_000, window: "1 second", algorithm: "token-bucket" }] } }
}

const workers = async (names: ReadonlyArray<string>): Promise<Array<Child>> => {
  if (redis === undefined || emulator === undefined) throw new Error("redis-server or the emulator did not start")
  const namespace = `line-${process.pid}-${++runs}`
  const started = names.map((name) => Child.fork({ name, redisUrl: redis!.url, emulatorUrl: emulator!.url, namespace, limiter }))
  started.forEach((child) => children.add(child))
  await Promise.all(started.map((child) => child.next("ready", 20_000)))
  return started
}

describe("one waiting line across processes", () => {
  it("a large call submitted first in A is admitted before small calls submitted later in B, C and D", async () => {
    const [a, ...others] = await workers(["A", "B", "C", "D"])
    // The bucket is emptied; then A asks for all of it, which takes a second to refill.
    a!.send({ type: "charge", bucket: "chat", tokens: 1_000, calls: 1 })
    await a!.next("charged", 5_000)
    a!.send({ type: "charge", bucket: "chat", tokens: 1_000, calls: 1 })
    const [queued] = await a!.next("queued", 5_000)
    await new Promise((resolve) => setTimeout(resolve, 50))
    // Small calls, each fitting after a tenth of that, keep coming from the other three.
    for (const other of others) other.send({ type: "charge", bucket: "chat", tokens: 100, calls: 8 })
    const small = (await Promise.all(others.map((other) => other.next("charged", 20_000, 8)))).flat()
    const [big] = await a!.next("charged", 20_000)
    const firstSmall = Math.min(...small.map((report) => report.admitted))
    console.log(
      `line: the large call admitted ${big!.admitted - queued!.at} ms after it queued; ` +
        `small calls from ${firstSmall - queued!.at} to ${Math.max(...small.map((report) => report.admitted)) - queued!.at} ms`
    )
    assert.isBelow(big!.admitted, firstSmall, "a small call went ahead of the large one that was waiting first")
    // It waited for the refill only, not behind the small calls (24 of them: 2.4 s of refill).
    assert.isBelow(big!.admitted - queued!.at, 1_500)
  }, 60_000)

  it("identical backlogged processes take turns", async () => {
    const all = await workers(["A", "B", "C", "D"])
    for (const child of all) child.send({ type: "charge", bucket: "chat", tokens: 100, calls: 15 })
    const reports = (await Promise.all(all.map((child) => child.next("charged", 30_000, 15)))).map((r) => r.map((c) => c.admitted))
    // The first 40 admissions (4 s of refill), by process.
    const cut = [...reports.flat()].sort((x, y) => x - y)[39]!
    const shares = reports.map((admitted) => admitted.filter((t) => t <= cut).length)
    console.log(`line: admissions per process among the first 40: ${shares.join(", ")}`)
    for (const share of shares) assert.isAtLeast(share, 7, `shares ${shares.join(", ")}`)
  }, 60_000)

  it("the place of a process killed while it waits lapses, and the others go on", async () => {
    const [a, b] = await workers(["A", "B"])
    a!.send({ type: "charge", bucket: "chat", tokens: 1_000, calls: 1 })
    await a!.next("charged", 5_000)
    // A waits for a full refill, first in line; B's small calls queue behind it.
    a!.send({ type: "charge", bucket: "chat", tokens: 1_000, calls: 1 })
    await a!.next("queued", 5_000)
    await new Promise((resolve) => setTimeout(resolve, 50))
    b!.send({ type: "charge", bucket: "chat", tokens: 100, calls: 5 })
    const [queued] = await b!.next("queued", 5_000)
    await a!.kill("SIGKILL")
    const killedAt = Date.now()
    const admitted = (await b!.next("charged", 10_000, 5)).map((report) => report.admitted)
    console.log(`line: after A was killed, B's calls admitted ${admitted.map((t) => t - killedAt).join(", ")} ms later`)
    // A's place lapses after two polls and a command timeout (1.5 s by default); the refill was there long before.
    assert.isBelow(Math.max(...admitted) - queued!.at, 1_500 + 1_000 + 500)
  }, 60_000)
})

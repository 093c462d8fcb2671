/**
 * A 3-master Redis Cluster: buckets whose keys live in slots on different masters each work through one
 * ioredis `Cluster`, every script touching only its bucket's slot, and room made for a bucket's waiting line
 * wakes its watchers through the cluster.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Cluster, Redis } from "ioredis"
import * as RedisBackend from "../../src/Backend/Redis.js"
import { bucketKeys } from "../../src/internal/redis/keys.js"
import type { Bucket } from "../../src/Quota.js"
import { redisCluster } from "../support/redisServer.js"

const bucketOf = (name: string): Bucket => ({
  name,
  quotas: [
    { metric: "requests", limit: 100, windowMs: 1000, algorithm: "token-bucket", refunds: true },
    { metric: "tokens", limit: 1000, windowMs: 1000, algorithm: "sliding-window", refunds: true },
    { metric: "tokens", limit: 5000, windowMs: 60_000, algorithm: "fixed-window", refunds: true },
    { metric: "requests", limit: 2, windowMs: 0, algorithm: "concurrency", refunds: true }
  ],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: 1000
})

describe("RedisBackend on a Redis Cluster", () => {
  it.scopedLive("reserves and settles for buckets on every master", () =>
    Effect.gen(function*() {
      const nodes = yield* redisCluster(3)
      const cluster = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Cluster(nodes.map((node) => ({ host: "127.0.0.1", port: node.port })), {
            lazyConnect: true,
            enableOfflineQueue: false,
            redisOptions: { commandTimeout: 1000 }
          })
        ),
        (c) => Effect.promise(() => c.quit().catch(() => "closed"))
      )
      const backend = yield* RedisBackend.make({ cluster, namespace: "clustered" })

      // Slot ranges -> the port of the master serving them.
      const ranges = yield* Effect.promise(() => cluster.cluster("SLOTS"))
      const portOf = (slot: number) => ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1]

      // One bucket per master: names tried until each master has one.
      const byPort = new Map<number, Bucket>()
      for (let i = 0; byPort.size < nodes.length && i < 1000; i++) {
        const bucket = bucketOf(`bucket-${i}`)
        const slots = yield* Effect.promise(() =>
          Promise.all(bucketKeys("clustered", bucket).map((key) => cluster.cluster("KEYSLOT", key)))
        )
        assert.strictEqual(new Set(slots).size, 1, "all keys of a bucket share one slot")
        const port = portOf(slots[0])
        if (port !== undefined && !byPort.has(port)) byPort.set(port, bucket)
      }
      assert.strictEqual(byPort.size, 3)

      for (const [port, bucket] of byPort) {
        const first = yield* backend.reserve(bucket, [1, 300, 300, 1], 0)
        const second = yield* backend.reserve(bucket, [1, 300, 300, 1], 0)
        assert.isTrue(first._tag === "Reserved" && second._tag === "Reserved")
        assert.deepStrictEqual(yield* backend.reserve(bucket, [1, 1, 1, 1], 0), { _tag: "Wait", retryAfterMs: Infinity })
        // A waiter keeps a place in the bucket's line; the settle that frees a slot wakes its watchers.
        let woken = 0
        const stop = backend.line!.watch(bucket, () => woken++)
        const waiter = {}
        assert.strictEqual((yield* backend.reserve(bucket, [1, 1, 1, 1], 0, waiter))._tag, "Wait")
        yield* Effect.sleep(200)
        if (first._tag === "Reserved") yield* backend.settle(bucket, first.reservation.id, [undefined, 100, 100, undefined])
        yield* Effect.sleep(200)
        assert.isAbove(woken, 0, "no wake-up through the cluster")
        stop()
        yield* backend.line!.leave(bucket, waiter)
        if (second._tag === "Reserved") yield* backend.release(bucket, second.reservation.id)
        const status = yield* backend.status(bucket, [1, 1, 1, 1])
        assert.strictEqual(status.open, 0)
        assert.deepStrictEqual(status.quotas.slice(1).map((q) => q.used), [100, 100, 0])

        // The state lives on the master that serves the bucket's slot.
        const node = new Redis(port, { host: "127.0.0.1", lazyConnect: true })
        yield* Effect.promise(() => node.connect())
        const [stateKey] = bucketKeys("clustered", bucket)
        assert.strictEqual(yield* Effect.promise(() => node.exists(stateKey)), 1)
        yield* Effect.promise(() => node.quit())
      }
    }), 60_000)
})

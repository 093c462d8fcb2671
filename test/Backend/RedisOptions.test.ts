import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, Layer } from "effect"
import { Redis } from "ioredis"
import { ConfigurationError, RedisBackend } from "../../src/index.js"
import { decodeOptions, type Settings } from "../../src/internal/redis/options.js"

// No Redis server: options are decoded before anything connects. Each bad set also names a port nothing
// listens on, so that a backend which did not check its options would fail to connect, or run without Redis,
// rather than reach a server.
const nowhere = "redis://127.0.0.1:1"

const bad: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
  ["a misspelled policy", { onUnavailable: "fail_closed" }, `onUnavailable: expected "fail-closed" | "fail-open" | "local", got "fail_closed"`],
  ["a local share above 1", { localShare: 2 }, "localShare: expected a number in (0, 1], got 2"],
  ["a local share of 0", { localShare: 0 }, "localShare: expected a number in (0, 1], got 0"],
  ["a local share that is not a number", { localShare: "half" }, `localShare: expected a number in (0, 1], got "half"`],
  ["a command timeout that is not a duration", { commandTimeout: "abc" }, `commandTimeout: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got "abc"`],
  ["a negative command timeout", { commandTimeout: -5 }, `commandTimeout: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got -5`],
  ["a connect timeout of 0", { connectTimeout: 0 }, `connectTimeout: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got 0`],
  ["a poll interval that is not a duration", { pollInterval: "often" }, `pollInterval: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got "often"`],
  ["an infinite reservation TTL", { reservationTtl: Infinity }, `reservationTtl: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got Infinity`],
  ["an empty namespace", { namespace: "" }, `namespace: expected a non-empty string, got ""`],
  ["a namespace that is not a string", { namespace: 7 }, "namespace: expected a non-empty string, got 7"],
  ["negative retries", { retry: { times: -1 } }, "retry.times: expected a non-negative integer, got -1"],
  ["fractional retries", { retry: { times: 1.5 } }, "retry.times: expected a non-negative integer, got 1.5"],
  ["a retry delay that is not a duration", { retry: { base: "soon" } }, `retry.base: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got "soon"`],
  ["a shrinking retry factor", { retry: { factor: 0.5 } }, "retry.factor: expected a finite number >= 1, got 0.5"],
  ["a negative longest retry delay", { retry: { maxDelay: -1 } }, `retry.maxDelay: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got -1`],
  ["retry options that are not an object", { retry: 3 }, "retry: expected an object of times, base, factor, maxDelay, got 3"],
  ["a misspelled retry option", { retry: { time: 3 } }, `retry.time: is unexpected, expected: "times" | "base" | "factor" | "maxDelay"`],
  ["connection options that are not an object", { connection: "localhost" }, `connection: expected ioredis options (an object), got "localhost"`]
]

const badUrls: ReadonlyArray<readonly [string, unknown, string]> = [
  ["a URL of another scheme", "http://127.0.0.1:1", `url: expected a redis:// or rediss:// URL, got "http://127.0.0.1:1"`],
  ["a URL without slashes", "redis:127.0.0.1:1", `url: expected a redis:// or rediss:// URL, got "redis:127.0.0.1:1"`],
  ["a URL that does not parse", "redis://127.0.0.1:99999", `url: expected a redis:// or rediss:// URL, got "redis://127.0.0.1:99999"`],
  ["a URL that is not a string", 6379, "url: expected a redis:// or rediss:// URL, got 6379"],
  // The password is not quoted back.
  ["a URL with a password", "http://user:s3cret@127.0.0.1:1", `url: expected a redis:// or rediss:// URL, got "http://***@127.0.0.1:1"`]
]

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined

describe("RedisBackend options", () => {
  it.effect("every bad option fails make and layer with a ConfigurationError naming it, before connecting", () =>
    Effect.gen(function*() {
      const cases = [
        ...bad.map(([name, options, issue]) => [name, { url: nowhere, ...options }, issue] as const),
        ...badUrls.map(([name, url, issue]) => [name, { url, onUnavailable: "fail-open" }, issue] as const)
      ]
      for (const [name, options, issue] of cases) {
        // Typed options cannot hold these values; options read from a file or the environment can.
        const untyped = options as RedisBackend.RedisBackendOptions
        const made = failureOf(yield* Effect.exit(Effect.scoped(RedisBackend.make(untyped))))
        const built = failureOf(yield* Effect.exit(Effect.scoped(Layer.build(RedisBackend.layer(untyped)))))
        for (const error of [made, built]) {
          assert.instanceOf(error, ConfigurationError, name)
          assert.deepStrictEqual(error.issues, [issue], name)
        }
      }
    }))

  it("decodeOptions reports every bad option at once, synchronously", () => {
    const decoded = decodeOptions({ onUnavailable: "fail_closed", localShare: 2, retry: { times: -1, factor: 0 }, onUnavailible: "local" })
    assert.isTrue(Either.isLeft(decoded))
    assert.deepStrictEqual(Either.isLeft(decoded) ? decoded.left.issues : [], [
      `onUnavailible: is unexpected, expected: "url" | "client" | "cluster" | "connection" | "namespace" | "reservationTtl" | "onUnavailable" | "localShare" | "retry" | "commandTimeout" | "connectTimeout" | "pollInterval"`,
      `onUnavailable: expected "fail-closed" | "fail-open" | "local", got "fail_closed"`,
      "localShare: expected a number in (0, 1], got 2",
      "retry.times: expected a non-negative integer, got -1",
      "retry.factor: expected a finite number >= 1, got 0"
    ])
    for (const options of [null, 5, "redis://127.0.0.1:6379", []]) {
      const notAnObject = decodeOptions(options)
      assert.isTrue(Either.isLeft(notAnObject) && notAnObject.left.issues[0].startsWith("expected the Redis backend's options (an object), got"))
    }
  })

  it("good options decode, with defaults where left out or undefined", () => {
    const client = new Redis({ lazyConnect: true })
    const good = decodeOptions({
      url: "rediss://:secret@redis.internal:6380/2",
      client,
      connection: { host: "redis.internal", port: 6380, tls: {} },
      namespace: "billing",
      reservationTtl: "5 minutes",
      onUnavailable: "local",
      localShare: 0.25,
      retry: { times: 0, base: "10 millis", factor: 3, maxDelay: "1 second" },
      commandTimeout: 0.5,
      connectTimeout: "3 seconds",
      pollInterval: 20
    })
    assert.isTrue(Either.isRight(good))
    assert.deepStrictEqual(Either.getOrThrow(good), {
      url: "rediss://:secret@redis.internal:6380/2",
      client,
      cluster: undefined,
      connection: { host: "redis.internal", port: 6380, tls: {} },
      namespace: "billing",
      reservationTtlMs: 300_000,
      // A sub-millisecond timeout is still one: at least a millisecond.
      commandTimeoutMs: 1,
      connectTimeoutMs: 3_000,
      policy: "local",
      localShare: 0.25,
      pollMs: 20,
      retry: { times: 0, baseMs: 10, factor: 3, maxDelayMs: 1_000 }
    })
    const defaults: Settings = {
      url: undefined,
      client: undefined,
      cluster: undefined,
      connection: undefined,
      namespace: "quotaflow",
      reservationTtlMs: 600_000,
      commandTimeoutMs: 500,
      connectTimeoutMs: 2_000,
      policy: "fail-closed",
      localShare: 1,
      pollMs: 500,
      retry: { times: 2, baseMs: 20, factor: 2, maxDelayMs: 200 }
    }
    assert.deepStrictEqual(Either.getOrThrow(decodeOptions({})), defaults)
    assert.deepStrictEqual(
      Either.getOrThrow(decodeOptions({ url: undefined, namespace: undefined, retry: { times: undefined }, localShare: undefined })),
      defaults
    )
    client.disconnect()
  })
})

/**
 * One worker process of `bench/cluster.ts`, forked with an IPC channel (`node --import tsx`). The parent sends
 * `setup` (which limiter, the quotas, the emulator, Redis, this process's share of the calls and its number of
 * callers); the worker builds its limiter, connects, says `ready`, waits for `go`, runs its calls with
 * `callers` concurrent callers (each takes the next call of the share when its previous one has ended), and
 * sends one `result` holding a record per call: submitted, admitted and finished (epoch ms), its sizes, its
 * status and attempts, and closes its limiter. The parent may send the next `setup` (the next scenario); the
 * process leaves when the parent goes away.
 *
 * Only public API: `createRateLimiter` (the Promise adapter) on the memory or the Redis backend, and
 * bottleneck in clustering mode.
 */
import Bottleneck from "bottleneck"
import type { LimiterConfig, QuotaInput } from "../src/Quota.js"
import { createRateLimiter, type RateLimiter } from "../src/Promise.js"
import type { ChatCall } from "../src/demo/Workload.js"

/** The quotas of one scenario, as both sides see them. */
export interface ScenarioShape {
  readonly style: "openai" | "anthropic"
  readonly algorithm: "token-bucket" | "sliding-window"
  readonly windowMs: number
  readonly limits: {
    readonly requests: number
    readonly tokens?: number
    readonly input_tokens?: number
    readonly output_tokens?: number
  }
  /** The metric bottleneck limits (it has one reservoir per limiter and one weight per job). */
  readonly binding: "tokens" | "output_tokens"
}

export type ContenderKind = "quotaflow-redis" | "quotaflow-memory" | "bottleneck"

export interface Setup {
  readonly type: "setup"
  readonly kind: ContenderKind
  readonly shape: ScenarioShape
  readonly emulatorUrl: string
  readonly redisHost: string
  readonly redisPort: number
  /** Redis namespace (quotaflow) or limiter id (bottleneck) of this run. */
  readonly namespace: string
  readonly callers: number
  readonly calls: ReadonlyArray<ChatCall>
  /** Attempts per call at most: a 429 is submitted through the limiter again, without a pause of its own. */
  readonly maxAttempts: number
}

export type ToWorker = Setup | { readonly type: "go" }

/** One call as the worker saw it; times are epoch milliseconds (one host, one clock). */
export interface CallRecord {
  readonly id: number
  readonly pid: number
  readonly promptTokens: number
  readonly maxTokens: number
  /** When the caller took the call up (before the limiter). */
  readonly submitted: number
  /** When the limiter let its last attempt go (the request is sent right after). */
  readonly admitted: number
  /** When its last attempt's answer was read. */
  readonly finished: number
  /** Final HTTP status; -1 when the call failed without one. */
  readonly status: number
  readonly attempts: number
  /** When each attempt refused with a 429 was admitted, and when its refusal was read. */
  readonly refused: ReadonlyArray<readonly [admitted: number, answered: number]>
  readonly error?: string
}

export type FromWorker =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "result"; readonly pid: number; readonly records: ReadonlyArray<CallRecord> }
  | { readonly type: "error"; readonly message: string }

const send = (message: FromWorker): Promise<void> =>
  new Promise((resolve) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, {}, () => resolve())
    else resolve()
  })

/** The limiter's configuration: the emulator's quotas, nothing else (default settings, as a user writes it). */
export const quotaflowConfig = (shape: ScenarioShape): LimiterConfig => {
  const window = `${shape.windowMs} millis`
  const quotas: Array<QuotaInput> = []
  for (const metric of ["requests", "tokens", "input_tokens", "output_tokens"] as const) {
    const limit = shape.limits[metric]
    if (limit !== undefined) quotas.push({ metric, limit, window, algorithm: shape.algorithm })
  }
  return { buckets: { chat: { quotas } } }
}

/** Bottleneck's reservoir: refilled every `windowMs / 40` by `limit / 40` up to `limit` (a token bucket in 40 steps), or reset to `limit` every window. */
export const bottleneckReservoir = (shape: ScenarioShape) => {
  const limit = shape.limits[shape.binding]!
  return shape.algorithm === "token-bucket"
    ? {
      reservoir: limit,
      reservoirIncreaseInterval: shape.windowMs / 40,
      reservoirIncreaseAmount: Math.floor(limit / 40),
      reservoirIncreaseMaximum: limit
    }
    : { reservoir: limit, reservoirRefreshInterval: shape.windowMs, reservoirRefreshAmount: limit }
}

interface Answer {
  readonly status: number
  readonly generated: number | undefined
}

const post = async (setup: Setup, call: ChatCall): Promise<Answer> => {
  const openai = setup.shape.style === "openai"
  const response = await fetch(`${setup.emulatorUrl}${openai ? "/v1/chat/completions" : "/v1/messages"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: openai ? "gpt-4o" : "claude-sonnet-4-5",
      max_tokens: call.maxTokens,
      messages: [{ role: "user", content: `Request ${call.id}: summarize the attached report in plain words.` }],
      x_prompt_tokens: call.promptTokens,
      x_completion_tokens: call.completionTokens
    })
  })
  const text = await response.text()
  if (response.status !== 200) return { status: response.status, generated: undefined }
  const usage = (JSON.parse(text) as { usage?: Record<string, number> }).usage
  return { status: 200, generated: openai ? usage?.completion_tokens : usage?.output_tokens }
}

/** Sends one call through the limiter; resolves when the call is admitted, and its answer read. */
type Attempt = (call: ChatCall, admitted: () => void) => Promise<Answer>

const quotaflowAttempt = (limiter: RateLimiter, setup: Setup): Attempt => {
  const anthropic = setup.shape.style === "anthropic"
  return (call, admitted) =>
    limiter.submit(
      {
        bucket: "chat",
        usage: anthropic ? { input_tokens: call.promptTokens, output_tokens: call.maxTokens } : { tokens: call.promptTokens + call.maxTokens }
      },
      () => {
        admitted()
        return post(setup, call)
      },
      // Anthropic gives unused output back at settlement; OpenAI keeps what it charged.
      anthropic
        ? { actualUsage: (a) => (a.status === 200 && a.generated !== undefined ? { input_tokens: call.promptTokens, output_tokens: a.generated } : undefined) }
        : {}
    )
}

const bottleneckAttempt = (limiter: Bottleneck, setup: Setup): Attempt => {
  const anthropic = setup.shape.style === "anthropic"
  return async (call, admitted) => {
    const weight = anthropic ? call.maxTokens : call.promptTokens + call.maxTokens
    const answer = await limiter.schedule({ weight }, () => {
      admitted()
      return post(setup, call)
    })
    // The output correction, as bottleneck allows it: give the unused output back to the reservoir (uncapped).
    if (anthropic && answer.status === 200 && answer.generated !== undefined && answer.generated < call.maxTokens) {
      await limiter.incrementReservoir(call.maxTokens - answer.generated)
    }
    return answer
  }
}

const run = async (setup: Setup, attempt: Attempt, go: Promise<void>): Promise<ReadonlyArray<CallRecord>> => {
  // Opens the HTTP connections before the run (no quota is touched): undici opens one per concurrent request.
  await Promise.all(Array.from({ length: setup.callers }, () => fetch(`${setup.emulatorUrl}/stats`).then((r) => r.text())))
  await send({ type: "ready", pid: process.pid })
  await go
  const records: Array<CallRecord> = []
  let next = 0
  const one = async (call: ChatCall) => {
    const submitted = Date.now()
    let admitted = Number.NaN
    let status = -1
    let attempts = 0
    let error: string | undefined
    const refused: Array<readonly [number, number]> = []
    while (attempts < setup.maxAttempts) {
      attempts++
      try {
        const answer = await attempt(call, () => (admitted = Date.now()))
        status = answer.status
        error = undefined
      } catch (e) {
        status = -1
        error = e instanceof Error ? `${e.name}: ${e.message}` : String(e)
      }
      if (status !== 429) break
      refused.push([admitted, Date.now()])
    }
    records.push({
      id: call.id,
      pid: process.pid,
      promptTokens: call.promptTokens,
      maxTokens: call.maxTokens,
      submitted,
      admitted,
      finished: Date.now(),
      status,
      attempts,
      refused,
      ...(error === undefined ? {} : { error })
    })
  }
  await Promise.all(
    Array.from({ length: setup.callers }, async () => {
      while (next < setup.calls.length) await one(setup.calls[next++]!)
    })
  )
  return records
}

const work = async (setup: Setup, go: Promise<void>): Promise<ReadonlyArray<CallRecord>> => {
  if (setup.kind === "bottleneck") {
    const limiter = new Bottleneck({
      datastore: "ioredis",
      clientOptions: { host: setup.redisHost, port: setup.redisPort },
      id: setup.namespace,
      ...bottleneckReservoir(setup.shape)
    })
    let closing = false
    // While disconnecting, bottleneck may still send its `blacklist_client` script on the closed connection
    // ("Connection is closed"): noise after the run, not a failure of it.
    limiter.on("error", (error: unknown) => {
      if (!closing) console.error("bottleneck:", error)
    })
    try {
      await limiter.ready()
      return await run(setup, bottleneckAttempt(limiter, setup), go)
    } finally {
      closing = true
      await limiter.disconnect(true)
    }
  }
  const limiter = createRateLimiter({
    ...quotaflowConfig(setup.shape),
    ...(setup.kind === "quotaflow-redis"
      ? { backend: { redis: `redis://${setup.redisHost}:${setup.redisPort}`, namespace: setup.namespace } }
      : {})
  })
  try {
    // Connects to Redis (and loads its function library) before saying ready.
    await limiter.status("chat")
    return await run(setup, quotaflowAttempt(limiter, setup), go)
  } finally {
    await limiter.close()
  }
}

if (process.env.BENCH_CLUSTER_WORKER === "1" && process.send !== undefined) {
  // One run at a time; the parent reuses the process for the next scenario (a new setup, a new limiter).
  let busy = false
  let letGo: (() => void) | undefined
  process.on("disconnect", () => process.exit(0))
  process.on("SIGINT", () => {})
  process.on("message", (message: ToWorker) => {
    if (message.type === "go") {
      letGo?.()
      letGo = undefined
      return
    }
    if (busy) return void send({ type: "error", message: "setup while a run is going on" })
    busy = true
    const go = new Promise<void>((resolve) => (letGo = resolve))
    work(message, go).then(
      async (records) => {
        busy = false
        await send({ type: "result", pid: process.pid, records })
      },
      async (error: unknown) => {
        await send({ type: "error", message: error instanceof Error ? error.stack ?? error.message : String(error) })
        process.exit(1)
      }
    )
  })
}

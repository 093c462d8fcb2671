/**
 * What the limiter learns from a provider's answers: the usage its rate-limit headers report (someone else may
 * share the key), limits reported below the configured ones, a 429's retry hint, and, for a bucket nobody
 * configured, its limits and their windows: from headers where the provider sends them, else from refusals.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import type { BackendService } from "../Backend.js"
import type { BackendUnavailable } from "../Errors.js"
import type * as Provider from "../Provider.js"
import type * as Quota from "../Quota.js"
import type { Entry, Learning } from "./limiter.js"
import { capacityOf } from "./meters.js"

/**
 * What a provider answered: the status and headers of a response (or of an SDK error), and its body when at
 * hand.
 */
export interface ProviderResponse {
  readonly status: number
  readonly headers: Provider.HeadersInput
  readonly body?: unknown
}

/** A provider's refusal that a retry may cure: what the limiter retries on its schedule. */
export class Refused {
  readonly _tag = "Refused"
  constructor(readonly response: ProviderResponse, readonly advice: Provider.RetryAdvice) {}
}

const WINDOW_MS: Record<Provider.LimitWindow, number> = { "1 second": 1_000, "1 minute": 60_000, "1 day": 86_400_000 }

/**
 * A learning bucket keeps a tenth of its shortest window of refill in hand: nobody configured the network's
 * jitter, which otherwise shows the provider two calls closer together than they were booked.
 */
export const learningSkew = (windowMs: number): number => Math.ceil(windowMs / 10)

/**
 * A 429 for a call the limiter admitted means the provider saw calls closer together than they were booked: the
 * bucket keeps more time for jitter (doubled, at least SKEW_STEP_MS more, at most a quarter of its shortest
 * window), then gives it back slowly, SKEW_DECAY of the excess per call answered.
 */
const SKEW_STEP_MS = 50
const SKEW_DECAY = 0.005

/** A rate is learnt from refusals once this many of the largest charges were consumed between two of them. */
const REFUSAL_SPAN = 10

/** A rate learnt from refusals is run this much below what was measured. */
const REFUSAL_BACKOFF = 0.95

/** The limit of a learning bucket's quota nobody has reported yet: never binding. */
export const UNREPORTED = 1_000_000_000

/**
 * The window a continuously refilling quota refills over, from one report: `limit x (time to full) / used`,
 * with how much was used (the larger, the more precise). The time to full is taken a rounding step late
 * (`resetPrecision`: 1 ms, or 1 s for whole-second RFC 3339 resets) and the use a rounding step low
 * (`precision`, or 1), so the rate this gives errs low. `undefined` when the report cannot tell.
 */
const windowOf = (report: Provider.ReportedLimit, now: number): { readonly windowMs: number; readonly used: number } | undefined => {
  if (report.limit === undefined || report.remaining === undefined || report.resetAt === undefined) return undefined
  const used = report.limit - report.remaining - (report.precision ?? 1)
  const toFull = report.resetAt - now + (report.resetPrecision ?? 1)
  return used > 0 && toFull > 0 ? { windowMs: Math.ceil((report.limit * toFull) / used), used } : undefined
}

/**
 * Reads a provider's answer: every quota the headers report is raised to the provider's usage (others may
 * share the key), and a refusal a retry may cure blocks the bucket for its hint (at most `maxBlockMs`, the
 * retries' `maxDelay`), for every caller of the backend. Returns the refusal, if it is one.
 */
export const learn = (
  provider: Provider.Provider,
  backend: BackendService,
  entry: Entry,
  response: ProviderResponse,
  charge: ReadonlyArray<number>,
  maxBlockMs: number
): Effect.Effect<Refused | undefined, BackendUnavailable> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const reported = provider.parseHeaders(response.headers, now)
    const rates = entry.bucket.quotas.filter((q) => q.algorithm !== "concurrency")
    const reports = entry.bucket.quotas.map((quota) => {
      // Headers report rates, never concurrency. One quota on a metric takes that metric's report; several
      // (per minute and per day) go by window.
      if (quota.algorithm === "concurrency") return undefined
      const alone = rates.filter((q) => q.metric === quota.metric).length === 1
      return reported.find((r) =>
        r.metric === quota.metric && (alone || r.window === undefined || WINDOW_MS[r.window] === quota.windowMs)
      )
    })
    const advice = response.status >= 400 ? provider.retryAfter(response.status, response.headers, response.body, now) : undefined
    const refused = advice !== undefined && advice.retry && (advice.kind === "rate-limited" || advice.kind === "overloaded")
    const learning = entry.learning
    if (learning === undefined) {
      yield* lowerTo(entry, reports)
      if (refused && advice.kind === "rate-limited") yield* raiseSkew(entry)
      else if (response.status < 400) decaySkew(entry)
    }
    else if (learning.fromHeaders || reports.some((report) => report?.limit !== undefined)) {
      learning.fromHeaders = true
      yield* learnLimits(entry, reports, now)
    } else if (refused && advice.kind === "rate-limited") yield* learnFromRefusal(backend, entry, learning, now)
    else if (response.status < 400) {
      charge.forEach((amount, i) => {
        learning.answered[i] += amount
        learning.largest[i] = Math.max(learning.largest[i], amount)
      })
      probeUp(entry, learning, now)
    }
    const used = reports.map((report) => {
      if (report?.limit === undefined || report.remaining === undefined) return undefined
      // A rounded remainder may hide up to half its precision of usage: assume the worse half.
      return Math.max(0, report.limit - report.remaining + (report.precision ?? 0) / 2)
    })
    // A limit the bucket has no quota for, reported exhausted, blocks it until its reset (basic mode's state).
    const exhausted = reported.reduce((until, r) =>
      r.remaining === 0 && r.resetAt !== undefined && !entry.bucket.quotas.some((q) => q.metric === r.metric)
        ? Math.max(until, r.resetAt - now)
        : until, 0)
    const blockForMs = Math.max(refused ? Math.min(advice.delayMs ?? 0, maxBlockMs) : 0, exhausted)
    if (blockForMs > 0 || used.some((u) => u !== undefined)) yield* backend.observe(entry.bucket, used, blockForMs)
    if (blockForMs > 0) entry.scheduler.notify()
    return refused ? new Refused(response, advice) : undefined
  })

/**
 * A limit the provider reports below the configured one wins: the bucket runs at it from now on (what is
 * booked stays booked), and the change is logged as a warning.
 */
const lowerTo = (entry: Entry, reports: ReadonlyArray<Provider.ReportedLimit | undefined>): Effect.Effect<void> => {
  const quotas = entry.bucket.quotas.map((quota, i) => {
    const limit = reports[i]?.limit
    return limit !== undefined && Number.isFinite(limit) && limit >= 1 && Math.floor(limit) < quota.limit
      ? { ...quota, limit: Math.floor(limit) }
      : quota
  })
  const changes = retune(entry, quotas)
  return changes.length === 0
    ? Effect.void
    : Effect.logWarning(`quotaflow: bucket ${entry.bucket.name} runs at the lower limits its provider reports: ${changes.join(", ")}`)
}

/**
 * A learning bucket takes the limits its provider reports, and the window each refills over: for a quota
 * that refills continuously, `limit x (time to full) / used` (the time rounded up and the use down, so the
 * rate errs low). Once any limit is known, the cautious one call in flight is lifted.
 */
const learnLimits = (entry: Entry, reports: ReadonlyArray<Provider.ReportedLimit | undefined>, now: number): Effect.Effect<void> => {
  const windowKnown = entry.learning?.windowKnown ?? []
  // Quotas the provider reports on one window (per minute, say) refill over one: the most used tells it best.
  const windows = new Map<Provider.LimitWindow | undefined, { readonly windowMs: number; readonly used: number }>()
  for (const report of reports) {
    const inferred = report === undefined ? undefined : windowOf(report, now)
    const best = report === undefined ? undefined : windows.get(report.window)
    if (report !== undefined && inferred !== undefined && (best === undefined || inferred.used > best.used)) windows.set(report.window, inferred)
  }
  let learnt = false
  const quotas = entry.bucket.quotas.map((quota, i) => {
    const report = reports[i]
    if (quota.algorithm !== "token-bucket" || report?.limit === undefined || !(report.limit >= 1)) return quota
    learnt = true
    const inferred = windowKnown[i] ? undefined : windows.get(report.window)?.windowMs
    if (inferred !== undefined) windowKnown[i] = true
    return { ...quota, limit: Math.min(quota.limit, Math.floor(report.limit)), windowMs: inferred ?? quota.windowMs }
  })
  const lifted = learnt ? quotas.map((q) => (q.algorithm === "concurrency" && q.limit === 1 ? { ...q, limit: UNREPORTED } : q)) : quotas
  const changes = retune(entry, lifted)
  return changes.length === 0
    ? Effect.void
    : Effect.logInfo(`quotaflow: bucket ${entry.bucket.name} learnt from its provider: ${changes.join(", ")}`)
}

/**
 * A learning bucket whose provider sends no rate-limit headers learns from its refusals. A refusal means the
 * provider's quota just ran dry; between two of them far enough apart it refilled at the rate this process
 * consumed: each rate quota is set a little below that, over a window that holds twice the largest charge
 * seen, and the cautious one call in flight is lifted. Until then each refusal's retry hint paces the calls.
 */
const learnFromRefusal = (backend: BackendService, entry: Entry, learning: Learning, now: number): Effect.Effect<void, BackendUnavailable> => {
  const { answered, largest } = learning
  const last = learning.lastRefusal
  // The provider's quota held anything from nothing to one charge at each refusal: the span must consume
  // many charges for that not to matter (a tenth of the rate at most).
  const spans = (i: number) => answered[i] - (last?.answered[i] ?? 0) >= REFUSAL_SPAN * largest[i]
  const measured = last !== undefined && entry.bucket.quotas.every((q, i) => q.algorithm !== "token-bucket" || spans(i))
  if (last !== undefined && !measured) return Effect.void
  learning.lastRefusal = { at: now, answered: [...answered] }
  if (last === undefined) return Effect.void
  const elapsed = now - last.at
  const quotas = entry.bucket.quotas.map((quota, i) => {
    const rate = (answered[i] - last.answered[i]) / elapsed
    if (quota.algorithm === "concurrency") return { ...quota, limit: UNREPORTED }
    if (!(rate > 0)) return quota
    const windowMs = Math.max(1_000, Math.ceil((2 * largest[i]) / rate))
    return { ...quota, limit: Math.max(1, Math.floor(rate * windowMs * REFUSAL_BACKOFF)), windowMs }
  })
  learning.raisedAt = now
  const changes = retune(entry, quotas)
  // The provider's quota is dry now: so is ours.
  const dry = backend.observe(entry.bucket, quotas.map((q) => (q.algorithm === "token-bucket" ? q.limit : undefined)), 0)
  return changes.length === 0
    ? dry
    : Effect.zipRight(dry, Effect.logInfo(`quotaflow: bucket ${entry.bucket.name} learnt from refusals: ${changes.join(", ")}`))
}

/** Without headers, a bucket that answers well creeps its rates up (0.5% a window) until a refusal corrects them. */
const probeUp = (entry: Entry, learning: Learning, now: number): void => {
  if (learning.lastRefusal === undefined || learning.raisedAt === -Infinity) return
  const windowMs = Math.max(...entry.bucket.quotas.filter((q) => q.algorithm === "token-bucket").map((q) => q.windowMs))
  if (now - learning.raisedAt < windowMs) return
  learning.raisedAt = now
  retune(entry, entry.bucket.quotas.map((q) => (q.algorithm === "token-bucket" ? { ...q, limit: Math.ceil(q.limit * 1.005) } : q)))
}

/** The most time a bucket keeps for jitter: a quarter of its shortest rate window. */
const skewCeiling = (bucket: Quota.Bucket): number =>
  bucket.quotas.reduce((ceiling, q) => (q.algorithm === "concurrency" || q.windowMs <= 0 ? ceiling : Math.min(ceiling, q.windowMs / 4)), Infinity)

const raiseSkew = (entry: Entry): Effect.Effect<void> => {
  const { jitter } = entry
  const ceiling = skewCeiling(entry.bucket)
  if (ceiling === Infinity) return Effect.void
  const before = entry.bucket.skew
  jitter.learnt = Math.min(ceiling, Math.max(2 * jitter.learnt, jitter.learnt + SKEW_STEP_MS))
  if (Math.round(jitter.learnt) === before) return Effect.void
  retuneSkew(entry, Math.round(jitter.learnt))
  return Effect.logInfo(`quotaflow: bucket ${entry.bucket.name} keeps ${entry.bucket.skew} ms for network jitter after a 429 (was ${before} ms)`)
}

const decaySkew = (entry: Entry): void => {
  const { jitter } = entry
  if (jitter.learnt <= jitter.configured) return
  jitter.learnt = Math.max(jitter.configured, jitter.learnt - (jitter.learnt - jitter.configured) * SKEW_DECAY - 0.01)
  // Retuned in steps of a millisecond: a call's answer alone should not cost a retune.
  const skew = Math.round(jitter.learnt)
  if (skew !== entry.bucket.skew) retuneSkew(entry, skew)
}

const retuneSkew = (entry: Entry, skew: number): void => {
  const bucket = { ...entry.bucket, skew }
  entry.bucket = bucket
  entry.scheduler.retune(bucket)
}

/** Runs the entry's bucket at these quotas from now on; returns what changed, in words. */
const retune = (entry: Entry, quotas: ReadonlyArray<Quota.Quota>): ReadonlyArray<string> => {
  const before = entry.bucket.quotas
  const changes = quotas.flatMap((quota, i) =>
    quota.limit === before[i].limit && quota.windowMs === before[i].windowMs
      ? []
      : [`${quota.metric} ${before[i].limit} per ${before[i].windowMs} ms -> ${quota.limit} per ${quota.windowMs} ms`]
  )
  if (changes.length === 0) return changes
  const windowMs = Math.min(...quotas.filter((q) => q.algorithm === "token-bucket").map((q) => q.windowMs))
  const skew = entry.learning === undefined ? entry.bucket.skew : learningSkew(windowMs)
  const bucket = { ...entry.bucket, quotas, skew }
  entry.bucket = bucket
  entry.capacities = quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier))
  entry.scheduler.retune(bucket)
  return changes
}

import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { BucketState } from "../../src/internal/bucketState.js"
import type { Algorithm, Bucket } from "../../src/Quota.js"

const WINDOW = 1000

const bucketOf = (algorithms: ReadonlyArray<Algorithm>, limits: ReadonlyArray<number>): Bucket => ({
  name: "b",
  quotas: algorithms.map((algorithm, i) => ({ metric: `m${i}`, limit: limits[i], windowMs: WINDOW, algorithm, refunds: true })),
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: Infinity
})

type Op =
  | { readonly op: "reserve"; readonly amounts: ReadonlyArray<number>; readonly maxWait: number }
  | { readonly op: "advance"; readonly ms: number }
  | { readonly op: "settle"; readonly pick: number; readonly fraction: number }
  | { readonly op: "release"; readonly pick: number }

const opsFor = (quotas: number, limit: number): fc.Arbitrary<ReadonlyArray<Op>> =>
  fc.array(
    fc.oneof(
      fc.record({
        op: fc.constant("reserve" as const),
        amounts: fc.array(fc.integer({ min: 0, max: limit }), { minLength: quotas, maxLength: quotas }),
        maxWait: fc.constantFrom(0, 500, Infinity)
      }),
      fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 700 }) }),
      fc.record({ op: fc.constant("settle" as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.record({ op: fc.constant("release" as const), pick: fc.nat() })
    ),
    { maxLength: 60 }
  )

interface Booking {
  readonly seq: number
  readonly id: string
  readonly at: number
  readonly amounts: ReadonlyArray<number>
  readonly bookedNow: number
  final: Array<number>
  settledAt?: number
  settleSeq?: number
  releasedAt?: number
}

/** Runs the ops and records every booking with what became of it. */
const simulate = (bucket: Bucket, ops: ReadonlyArray<Op>, start: number) => {
  const state = new BucketState(bucket)
  const bookings: Array<Booking> = []
  let now = start
  ops.forEach((op, seq) => {
    const open = bookings.filter((b) => b.settledAt === undefined && b.releasedAt === undefined)
    switch (op.op) {
      case "reserve": {
        const outcome = state.reserve(op.amounts, now, op.maxWait)
        if (outcome._tag === "Reserved") {
          expect(outcome.at).toBeGreaterThanOrEqual(now)
          expect(outcome.at - now).toBeLessThanOrEqual(op.maxWait)
          bookings.push({ seq, id: outcome.id, at: outcome.at, amounts: op.amounts, bookedNow: now, final: [...op.amounts] })
        } else if (outcome._tag === "Wait" && outcome.retryAfterMs !== Infinity) {
          expect(outcome.retryAfterMs).toBeGreaterThan(op.maxWait)
        }
        break
      }
      case "advance":
        now += op.ms
        break
      case "settle": {
        // Only a call that has started can settle.
        const started = open.filter((b) => b.at <= now)
        if (started.length === 0) break
        const booking = started[op.pick % started.length]
        const actual = booking.amounts.map((a) => Math.floor(a * op.fraction))
        expect(state.settle(booking.id, actual, now)).toBe(true)
        expect(state.settle(booking.id, actual, now)).toBe(false)
        booking.final = actual
        booking.settledAt = now
        booking.settleSeq = seq
        break
      }
      case "release": {
        if (open.length === 0) break
        const booking = open[op.pick % open.length]
        expect(state.release(booking.id, now)).toBe(true)
        expect(state.release(booking.id, now)).toBe(false)
        booking.releasedAt = now
        break
      }
    }
  })
  return { state, bookings, now }
}

const ran = (bookings: ReadonlyArray<Booking>) => bookings.filter((b) => b.releasedAt === undefined)

/** A provider's token bucket: drains continuously, refunds floor at empty. It must accept every admission. */
const checkTokenBucket = (bookings: ReadonlyArray<Booking>, q: number, limit: number) => {
  const events = ran(bookings).flatMap((b) => [
    { t: b.at, seq: b.seq, delta: b.amounts[q] },
    ...(b.settledAt !== undefined ? [{ t: b.settledAt, seq: b.settleSeq ?? 0, delta: b.final[q] - b.amounts[q] }] : [])
  ]).sort((x, y) => x.t - y.t || x.seq - y.seq)
  let level = 0
  let last = -Infinity
  for (const e of events) {
    if (last !== -Infinity) level = Math.max(0, level - ((e.t - last) * limit) / WINDOW)
    last = e.t
    level = Math.max(0, level + e.delta)
    if (e.delta > 0) expect(level).toBeLessThanOrEqual(limit + 1e-6)
  }
}

/** Any interval of the window's length holds at most the limit of what ran. */
const checkSliding = (bookings: ReadonlyArray<Booking>, q: number, limit: number) => {
  const entries = ran(bookings)
  for (const end of entries) {
    // In the window (end - WINDOW, end] as the meter reckons it: an entry leaves at its time + WINDOW. (end - WINDOW
    // rounds differently from at + WINDOW, by 1e-13 ms, and would count an entry the meter has let go.)
    const sum = entries.filter((b) => b.at + WINDOW > end.at && b.at <= end.at).reduce((s, b) => s + b.final[q], 0)
    expect(sum).toBeLessThanOrEqual(limit)
  }
}

const checkFixed = (bookings: ReadonlyArray<Booking>, q: number, limit: number) => {
  const perWindow = new Map<number, number>()
  for (const b of ran(bookings)) {
    const w = Math.floor(b.at / WINDOW)
    perWindow.set(w, (perWindow.get(w) ?? 0) + b.final[q])
  }
  for (const sum of perWindow.values()) expect(sum).toBeLessThanOrEqual(limit)
}

/** At every admission, what is held (admitted, not yet settled or released) fits the limit. */
const checkConcurrency = (bookings: ReadonlyArray<Booking>, q: number, limit: number) => {
  for (const b of bookings) {
    const held = bookings.filter((o) => o.seq <= b.seq && (o.settledAt ?? o.releasedAt ?? Infinity) > b.at || o === b)
      .filter((o) => o.seq < b.seq ? !(o.settleSeq !== undefined && o.settleSeq < b.seq) : true)
      .reduce((s, o) => s + o.amounts[q], 0)
    expect(held).toBeLessThanOrEqual(limit)
  }
}

const checks: Record<Algorithm, (bookings: ReadonlyArray<Booking>, q: number, limit: number) => void> = {
  "token-bucket": checkTokenBucket,
  "sliding-window": checkSliding,
  "fixed-window": checkFixed,
  "concurrency": checkConcurrency
}

const algorithms: ReadonlyArray<Algorithm> = ["token-bucket", "sliding-window", "fixed-window", "concurrency"]

describe("BucketState properties", () => {
  for (const algorithm of algorithms) {
    it(`${algorithm}: never admits more than the limit, books FIFO, settles and releases once`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 5000 }), opsFor(1, 20), (limit, start, ops) => {
          const { bookings } = simulate(bucketOf([algorithm], [limit]), ops.map((op) =>
            op.op === "reserve" ? { ...op, amounts: op.amounts.map((a) => Math.min(a, limit)) } : op), start)
          bookings.forEach((b, i) => i > 0 && expect(b.at).toBeGreaterThanOrEqual(bookings[i - 1].at))
          checks[algorithm](bookings, 0, limit)
        }),
        { numRuns: 300 }
      )
    })
  }

  it("several quotas at once: every quota holds and the booking fits all of them", () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray([...algorithms], { minLength: 2, maxLength: 3 }),
        fc.integer({ min: 1, max: 20 }),
        opsFor(3, 20),
        (chosen, limit, ops) => {
          const limits = chosen.map((_, i) => limit + i * 3)
          const { bookings } = simulate(bucketOf(chosen, limits), ops.map((op) =>
            op.op === "reserve" ? { ...op, amounts: chosen.map((_, i) => Math.min(op.amounts[i], limits[i])) } : op), 0)
          chosen.forEach((algorithm, q) => checks[algorithm](bookings, q, limits[q]))
        }
      ),
      { numRuns: 300 }
    )
  })

  it("after every open reservation is released, the capacity is as if they were never made (a token bucket never holds less)", () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray([...algorithms], { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 20 }),
        opsFor(4, 20),
        fc.integer({ min: 0, max: 3000 }),
        (chosen, limit, ops, later) => {
          const bucket = bucketOf(chosen, chosen.map(() => limit))
          const clipped = ops.map((op) => op.op === "reserve" ? { ...op, amounts: chosen.map((_, i) => Math.min(op.amounts[i], limit)) } : op)
          const { state, bookings, now } = simulate(bucket, clipped, 0)
          for (const b of bookings) if (b.settledAt === undefined && b.releasedAt === undefined) {
            state.release(b.id, now)
            b.releasedAt = now
          }
          // The same history without the released bookings, booked at the same times.
          const replay = new BucketState(bucket)
          const events = ran(bookings).flatMap((b) => [
            { t: b.at, seq: b.seq, run: (ids: Map<Booking, string>) => ids.set(b, replay.book(b.amounts, b.at, b.bookedNow)) },
            { t: b.settledAt ?? 0, seq: b.settleSeq ?? 0, run: (ids: Map<Booking, string>) => replay.settle(ids.get(b) ?? "", b.final, b.settledAt ?? 0) }
          ]).sort((x, y) => x.seq - y.seq)
          const ids = new Map<Booking, string>()
          for (const e of events) e.run(ids)
          const t = now + later
          const ours = state.status(t, chosen.map(() => 1)).quotas.map((q) => q.used)
          const theirs = replay.status(t, chosen.map(() => 1)).quotas.map((q) => q.used)
          chosen.forEach((algorithm, i) => {
            // A token bucket gives back exactly when it can prove it, and otherwise keeps the rest until it drains:
            // it may hold more than the exact state, never less.
            if (algorithm === "token-bucket") expect(ours[i]).toBeGreaterThanOrEqual(theirs[i] - 1e-6)
            else expect(ours[i]).toBeCloseTo(theirs[i], 6)
          })
          expect(state.status(t, chosen.map(() => 1)).open).toBe(0)
        }
      ),
      { numRuns: 500 }
    )
  })

  it("reservations released before time moves on (interrupted waiters) give back exactly, on every algorithm", () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray([...algorithms], { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 20 }),
        opsFor(4, 20),
        fc.array(fc.tuple(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 4, maxLength: 4 }), fc.constantFrom(0, Infinity)), {
          maxLength: 6
        }),
        fc.integer({ min: 0, max: 3000 }),
        (chosen, limit, history, interrupted, later) => {
          const bucket = bucketOf(chosen, chosen.map(() => limit))
          const clip = (amounts: ReadonlyArray<number>) => chosen.map((_, i) => Math.min(amounts[i], limit))
          const clipped = history.map((op) => op.op === "reserve" ? { ...op, amounts: clip(op.amounts) } : op)
          const ours = simulate(bucket, clipped, 0)
          const theirs = simulate(bucket, clipped, 0)
          const ids = interrupted.flatMap(([amounts, maxWait]) => {
            const outcome = ours.state.reserve(clip(amounts), ours.now, maxWait)
            return outcome._tag === "Reserved" ? [outcome.id] : []
          })
          for (const id of fc.sample(fc.shuffledSubarray(ids, { minLength: ids.length }), 1)[0] ?? ids) {
            expect(ours.state.release(id, ours.now)).toBe(true)
          }
          const t = ours.now + later
          const demand = chosen.map(() => 1)
          const a = ours.state.status(t, demand)
          const b = theirs.state.status(t, demand)
          a.quotas.forEach((q, i) => expect(q.used).toBeCloseTo(b.quotas[i].used, 6))
          expect(a.open).toBe(b.open)
        }
      ),
      { numRuns: 500 }
    )
  })
})

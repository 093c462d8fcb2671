/**
 * The demo's terminal view: a header, live progress (redrawn in place on a terminal, occasional plain lines
 * otherwise) and the summary table. Pure formatting plus a small writer; `runDemo` knows nothing of it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { runDemo } from "./Demo.js"
 * import { makeProgressView, renderHeader, renderSummary, styleFor } from "./Render.js"
 *
 * const style = styleFor(process.stdout)
 * const view = makeProgressView(process.stdout)
 * const program = Effect.gen(function*() {
 *   const summary = yield* runDemo({
 *     onStart: (info) => Effect.sync(() => process.stdout.write(renderHeader(info, style))),
 *     onProgress: view.update
 *   }).pipe(Effect.ensuring(view.finish))
 *   process.stdout.write(renderSummary(summary, style))
 * })
 * ```
 */
import { Effect } from "effect"
import type { DemoBackend, DemoProgress, DemoStart, DemoSummary, ResolvedDemoOptions } from "./Demo.js"
import { type DemoMetric, metricsOf } from "./Scenario.js"

/**
 * Where the view writes: `process.stdout` or anything shaped like it.
 *
 * @example
 * ```ts
 * const lines: Array<string> = []
 * const out: Output = { write: (text) => void lines.push(text), isTTY: false }
 * ```
 */
export interface Output {
  readonly write: (text: string) => unknown
  readonly isTTY?: boolean
  readonly columns?: number
}

/**
 * Text styling: ANSI colors on a terminal, plain text elsewhere.
 *
 * @example
 * ```ts
 * const style = plain
 * style.bold("Result") // "Result"
 * ```
 */
export interface TextStyle {
  readonly bold: (text: string) => string
  readonly dim: (text: string) => string
  readonly good: (text: string) => string
  readonly warn: (text: string) => string
  readonly bad: (text: string) => string
  readonly accent: (text: string) => string
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`

/**
 * The styling that leaves text as it is.
 *
 * @example
 * ```ts
 * plain.good("0") // "0"
 * ```
 */
export const plain: TextStyle = {
  bold: (t) => t,
  dim: (t) => t,
  good: (t) => t,
  warn: (t) => t,
  bad: (t) => t,
  accent: (t) => t
}

/**
 * ANSI styling.
 *
 * @example
 * ```ts
 * ansi.bold("Result") // "\x1b[1mResult\x1b[22m"
 * ```
 */
export const ansi: TextStyle = {
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  good: sgr(32, 39),
  warn: sgr(33, 39),
  bad: sgr(31, 39),
  accent: sgr(36, 39)
}

/**
 * ANSI styling for a terminal unless `NO_COLOR` is set or `TERM` is `dumb`; plain text otherwise.
 *
 * @example
 * ```ts
 * const style = styleFor(process.stdout)
 * ```
 */
export const styleFor = (out: Output, env: Readonly<Record<string, string | undefined>> = process.env): TextStyle =>
  out.isTTY === true && env.NO_COLOR === undefined && env.TERM !== "dumb" ? ansi : plain

/**
 * Seconds with two decimals.
 *
 * @example
 * ```ts
 * seconds(18_295) // "18.30 s"
 * ```
 */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`

/**
 * An integer with thousands separators.
 *
 * @example
 * ```ts
 * integer(95_587) // "95,587"
 * ```
 */
export const integer = (n: number): string => Math.round(n).toLocaleString("en-US")

/**
 * A short amount: `980`, `52.5k`, `1.2M`.
 *
 * @example
 * ```ts
 * compact(52_480) // "52.5k"
 * ```
 */
export const compact = (n: number): string => {
  const abs = Math.abs(n)
  const trim = (text: string) => (text.includes(".") ? text.replace(/\.?0+$/, "") : text)
  if (abs >= 999_500) return `${trim((n / 1_000_000).toFixed(abs >= 9_950_000 ? 0 : 1))}M`
  if (abs >= 9_995) return `${trim((n / 1000).toFixed(abs >= 99_950 ? 0 : 1))}k`
  if (abs >= 1000) return `${trim((n / 1000).toFixed(2))}k`
  return `${Math.round(n)}`
}

const visibleLength = (text: string): number => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").length

const padEnd = (text: string, width: number): string => text + " ".repeat(Math.max(0, width - visibleLength(text)))
const padStart = (text: string, width: number): string => " ".repeat(Math.max(0, width - visibleLength(text))) + text

/** Cuts a line to `width` visible characters, keeping escape sequences whole. */
const fit = (line: string, width: number): string => {
  if (visibleLength(line) <= width) return line
  let out = ""
  let visible = 0
  for (let i = 0; i < line.length && visible < width - 1;) {
    const escape = /^\x1b\[[0-9;?]*[A-Za-z]/.exec(line.slice(i))
    if (escape) {
      out += escape[0]
      i += escape[0].length
    } else {
      out += line[i]
      visible++
      i++
    }
  }
  return `${out}…\x1b[0m`
}

/**
 * A bar of `width` cells filled to `fraction` (clamped to [0, 1]), with eighth-cell precision.
 *
 * @example
 * ```ts
 * bar(0.5, 8) // "████░░░░"
 * ```
 */
export const bar = (fraction: number, width: number): string => {
  const eighths = Math.round(Math.min(1, Math.max(0, fraction)) * width * 8)
  const full = Math.floor(eighths / 8)
  const partial = eighths % 8
  const partials = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
  const filled = "█".repeat(full) + (partial > 0 ? partials[partial] : "")
  return filled + "░".repeat(Math.max(0, width - full - (partial > 0 ? 1 : 0)))
}

const metricLabel = (metric: DemoMetric): string => metric.replace("_", " ")

const algorithmLabel = (options: ResolvedDemoOptions): string =>
  options.algorithm === "token-bucket" ? "token bucket" : "sliding window"

/**
 * How the limiter runs: `memory backend`, or the Redis backend with its URL and the number of processes.
 *
 * @example
 * ```ts
 * backendLabel({ kind: "redis", url: "redis://127.0.0.1:6379", processes: 4 }) // "Redis backend (redis://127.0.0.1:6379), 4 processes"
 * ```
 */
export const backendLabel = (backend: DemoBackend): string =>
  backend.kind === "memory"
    ? "memory backend"
    : `Redis backend (${redactUrl(backend.url ?? "")}), ${backend.processes} ${backend.processes === 1 ? "process" : "processes"}`

/** The URL without its password. */
const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString().replace(/\/$/, "")
  } catch {
    return url
  }
}

const windowLabel = (windowMs: number): string =>
  windowMs % 1000 === 0 ? `${windowMs / 1000} s` : `${(windowMs / 1000).toFixed(1)} s`

/**
 * The lines printed before the run: what runs, against what limits.
 *
 * @example
 * ```ts
 * process.stdout.write(renderHeader({ url: "http://127.0.0.1:40123", options: resolveOptions({}) }, plain))
 * ```
 */
export const renderHeader = (start: DemoStart, style: TextStyle): string => {
  const { options } = start
  const window = windowLabel(options.windowMs)
  const limits = metricsOf(options.style)
    .flatMap((metric) => {
      const limit = options.limits[metric]
      return limit === undefined ? [] : [`${integer(limit)} ${metricLabel(metric)}`]
    })
    .join(", ")
  const charges = options.style === "openai"
    ? "tokens = prompt + max_tokens, kept (OpenAI does not give unused tokens back)"
    : "input = prompt, output = max_tokens, settled to the tokens generated"
  const row = (label: string, value: string) => `  ${style.dim(padEnd(label, 10))}${value}\n`
  return [
    `\n${style.bold("quotaflow demo")}  ${options.style} style, ${algorithmLabel(options)}, ${options.calls} calls (seed ${options.seed})\n`,
    row("emulator", `${start.url}  (a "minute" lasts ${window})`),
    row("limits", `${limits} per ${window}`),
    row("charges", charges),
    row("limiter", `quotaflow, ${backendLabel(start.backend)}, the same quotas`),
    options.skewMs === 0 ? "" : row("skew", `${options.skewMs} ms: calls may reach the emulator that much later than booked`),
    "\n"
  ].join("")
}

const rateLimitedText = (n: number, style: TextStyle) => (n === 0 ? style.good("0") : style.bad(`${n}`))

/**
 * The live block for a terminal: overall progress, the queue, and each quota's use against its limit.
 *
 * @example
 * ```ts
 * const lines = renderProgressLines(progress, plain)
 * ```
 */
export const renderProgressLines = (p: DemoProgress, style: TextStyle): ReadonlyArray<string> => {
  const label = (text: string) => `  ${padEnd(text, 15)}`
  const ended = p.done + p.failed
  const failed = p.failed > 0 ? `, ${style.bad(`${p.failed} failed`)}` : ""
  const lines = [
    `${label("calls")}${style.accent(bar(ended / Math.max(1, p.total), 24))}  ${padStart(`${ended}/${p.total}`, 9)}  ${style.dim((p.elapsedMs / 1000).toFixed(1) + " s")}`,
    `${label("")}${p.queued} queued, ${p.inFlight} in flight, ${rateLimitedText(p.rejected429, style)} × 429${failed}`
  ]
  for (const q of p.quotas) {
    const fraction = q.used / q.limit
    const color = fraction > 0.98 ? style.good : style.accent
    lines.push(`${label(q.metric)}${color(bar(fraction, 24))}  ${padStart(`${compact(q.used)} / ${compact(q.limit)}`, 15)}  ${style.dim("in use")}`)
  }
  return lines
}

/**
 * One plain progress line, for logs and pipes.
 *
 * @example
 * ```ts
 * renderProgressPlain(progress) // "[  4.0 s] 96/300 calls, 150 queued, 8 in flight, 0 × 429; in use: requests 12/120, ..."
 * ```
 */
export const renderProgressPlain = (p: DemoProgress): string => {
  const quotas = p.quotas.map((q) => `${q.metric} ${compact(q.used)}/${compact(q.limit)}`).join(", ")
  const failed = p.failed > 0 ? `, ${p.failed} failed` : ""
  return `[${padStart((p.elapsedMs / 1000).toFixed(1), 5)} s] ${p.done + p.failed}/${p.total} calls, ${p.queued} queued, ${p.inFlight} in flight, ${p.rejected429} × 429${failed}; in use: ${quotas}`
}

/**
 * A live progress view: `update` with each report (redrawn at most every `minIntervalMs` on a terminal, a
 * plain line every `plainEveryMs` elsewhere), `finish` once at the end (draws the last state, restores the
 * cursor).
 *
 * @example
 * ```ts
 * const view = makeProgressView(process.stdout)
 * const summary = yield* runDemo({ onProgress: view.update }).pipe(Effect.ensuring(view.finish))
 * ```
 */
export interface ProgressView {
  readonly update: (progress: DemoProgress) => Effect.Effect<void>
  readonly finish: Effect.Effect<void>
}

/**
 * Makes the progress view for `out` (see `ProgressView`).
 *
 * @example
 * ```ts
 * const view = makeProgressView(process.stdout, { plainEveryMs: 5_000 })
 * ```
 */
export const makeProgressView = (
  out: Output,
  options: { readonly minIntervalMs?: number; readonly plainEveryMs?: number; readonly style?: TextStyle } = {}
): ProgressView => {
  const tty = out.isTTY === true
  const style = options.style ?? styleFor(out)
  const minIntervalMs = options.minIntervalMs ?? 100
  const plainEveryMs = options.plainEveryMs ?? 2_000
  let last: DemoProgress | undefined
  let drawnLines = 0
  let drawnAt = -Infinity
  let printedAt = 0
  let finished = false

  const draw = (p: DemoProgress) => {
    const columns = out.columns !== undefined && out.columns > 0 ? out.columns : 100
    const width = Math.max(40, columns - 1)
    const lines = renderProgressLines(p, style).map((line) => fit(line, width))
    const up = drawnLines > 0 ? `\x1b[${drawnLines}F` : "\x1b[?25l"
    out.write(up + lines.map((line) => `\x1b[2K${line}\n`).join(""))
    drawnLines = lines.length
  }

  const update = (p: DemoProgress) =>
    Effect.sync(() => {
      if (finished) return
      last = p
      if (tty) {
        if (p.elapsedMs - drawnAt < minIntervalMs) return
        drawnAt = p.elapsedMs
        draw(p)
      } else if (p.elapsedMs - printedAt >= plainEveryMs) {
        printedAt = p.elapsedMs
        out.write(`${renderProgressPlain(p)}\n`)
      }
    })

  const finish = Effect.sync(() => {
    if (finished) return
    finished = true
    if (tty) {
      if (last !== undefined) draw(last)
      out.write("\x1b[?25h")
    } else if (last !== undefined && printedAt !== last.elapsedMs) {
      out.write(`${renderProgressPlain(last)}\n`)
    }
  })

  return { update, finish }
}

const percent = (x: number): string => `${(x * 100).toFixed(1)} %`

/**
 * The summary table printed after the run.
 *
 * @example
 * ```ts
 * process.stdout.write(renderSummary(summary, plain))
 * ```
 */
export const renderSummary = (summary: DemoSummary, style: TextStyle): string => {
  const { options } = summary
  const window = windowLabel(options.windowMs)
  const zero = (n: number) => (n === 0 ? style.good("0") : style.bad(integer(n)))
  const fitsBurst = summary.efficiency === undefined
  const efficiency = fitsBurst
    ? style.dim("n/a: the whole workload fits the quotas' first burst (try more --calls)")
    : `${(summary.efficiency >= 0.9 ? style.good : style.warn)(percent(summary.efficiency))}  ${style.dim("(minimum / wall time)")}`
  const minimum = fitsBurst
    ? `${seconds(0)}  ${style.dim("(no quota is ever exhausted)")}`
    : `${seconds(summary.minimumMs)}  ${style.dim(`(${summary.bindingMetric} at its limit)`)}`
  const calls = summary.failed === 0
    ? `${summary.ok} ok`
    : `${summary.ok} ok, ${style.bad(`${summary.failed} failed`)}`
  const rows: ReadonlyArray<readonly [string, string]> = [
    ["Wall time", seconds(summary.wallMs)],
    ["Theoretical minimum", minimum],
    ["Efficiency", efficiency],
    ["429s, emulator /stats", zero(summary.rejected429.emulator)],
    ["429s, responses", zero(summary.rejected429.responses)],
    ["Quota violations", `${zero(summary.violations)}  ${style.dim("(emulator's independent audit)")}`],
    ["Wait p50 / p99", `${seconds(summary.waitMs.p50)} / ${seconds(summary.waitMs.p99)}  ${style.dim("(submit to admission)")}`],
    ["Calls", calls],
    ...(summary.backend.kind === "memory"
      ? []
      : [
        ["Processes", `${summary.backend.processes}`] as const,
        ["Backend", `Redis  ${style.dim(`(${redactUrl(summary.backend.url ?? "")})`)}`] as const
      ])
  ]
  const labelWidth = 24
  const rule = style.dim(`  ${"─".repeat(68)}`)
  const head = [
    padEnd("Quota", 16),
    padStart(`Limit / ${window}`, 14),
    padStart("Used", 12),
    padStart("Time at limit", 15),
    padStart("Peak in use", 13)
  ].join("")
  const quotaRows = summary.quotas.map((q) => {
    const line = [
      padEnd(q.metric, 16),
      padStart(integer(q.limit), 14),
      padStart(integer(q.total), 12),
      padStart(seconds(q.minimumMs), 15),
      padStart(integer(q.peak), 13)
    ].join("")
    const binding = q.binding && !fitsBurst
    return `  ${binding ? style.bold(line) : line}${binding ? style.accent("  ◀ binding") : ""}`
  })
  const notes = [
    options.algorithm === "token-bucket"
      ? "Time at limit: what is left after the first full bucket, at the quota's refill rate."
      : "Time at limit: a sliding window passes at most its limit per window, so whole windows count.",
    options.style === "anthropic"
      ? "Output tokens count as generated (settled); they are charged max_tokens until each call ends."
      : "Tokens count prompt + max_tokens, as OpenAI charges and keeps them.",
    "The minimum leaves out response latency; the wall time includes the last response."
  ]
  return [
    "",
    `  ${style.bold("Summary")}`,
    rule,
    ...rows.map(([label, value]) => `  ${padEnd(label, labelWidth)}${value}`),
    rule,
    `  ${style.dim(head)}`,
    ...quotaRows,
    rule,
    ...notes.map((note) => `  ${style.dim(note)}`),
    ""
  ].join("\n") + "\n"
}

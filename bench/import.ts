/**
 * What importing quotaflow costs, side by side with `effect` itself: each module is imported by a fresh node
 * process (nothing else loaded, no tsx), which reports the import's wall time, its resident set size and the
 * heap after it, once as left by the import and once after a full GC (what the module keeps). Medians of RUNS
 * processes per module.
 *
 *   a. `effect`              the floor: every quotaflow user loads it anyway;
 *   b. `quotaflow`           the library entry, from the build (dist/, through the package's exports map);
 *   c. `quotaflow/HttpClient` the @effect/platform HttpClient middleware (the library plus platform's client);
 *   d. `quotaflow/emulator`  the provider emulator and its HTTP server.
 *
 * Run:  npm run build && npx tsx bench/import.ts
 *       RUNS=15 npx tsx bench/import.ts              (more processes per module; default 7)
 * The modules resolve from the repository root, as a consumer's would: `quotaflow` by self-reference.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import os from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { revision } from "./quotaflow.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const RUNS = Number(process.env.RUNS ?? 7)

interface Sample {
  readonly importMs: number
  readonly processMs: number
  readonly heapMB: number
  readonly retainedMB: number
  readonly rssMB: number
}

// Runs in the child: the timer starts just before the import, so node's own start-up is not counted in
// `importMs` (it is in `processMs`, measured from outside).
const probe = (specifier: string): string => `
  const start = performance.now()
  await import(${JSON.stringify(specifier)})
  const importMs = performance.now() - start
  const { heapUsed, rss } = process.memoryUsage()
  globalThis.gc()
  const retained = process.memoryUsage().heapUsed
  console.log(JSON.stringify({ importMs, heapMB: heapUsed / 2 ** 20, retainedMB: retained / 2 ** 20, rssMB: rss / 2 ** 20 }))
`

const sample = (specifier: string): Sample | string => {
  const started = performance.now()
  try {
    const output = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", probe(specifier)], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"]
    })
    return { ...(JSON.parse(output) as Omit<Sample, "processMs">), processMs: performance.now() - started }
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? String(error)
    return stderr.match(/\b(ERR_[A-Z_]+)/)?.[1] ?? stderr.split("\n")[0]
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

if (!existsSync(join(root, "dist", "index.js"))) {
  process.stderr.write("dist/ is missing: run `npm run build` first\n")
  process.exit(1)
}

const specifiers = ["effect", "quotaflow", "quotaflow/HttpClient", "quotaflow/emulator"]
console.log(`import cost, median of ${RUNS} fresh processes; node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}; ${revision()}`)
console.log("")
console.log("module                import ms   process ms    rss MB   heapUsed MB   after GC MB   heap vs effect")
let effectHeap = Number.NaN
for (const specifier of specifiers) {
  const samples: Array<Sample> = []
  let failure: string | undefined
  for (let i = 0; i < RUNS && failure === undefined; i++) {
    const result = sample(specifier)
    if (typeof result === "string") failure = result
    else samples.push(result)
  }
  if (failure !== undefined) {
    console.log(`${specifier.padEnd(20)}  not importable: ${failure}`)
    continue
  }
  const heap = median(samples.map((s) => s.heapMB))
  if (specifier === "effect") effectHeap = heap
  console.log(
    specifier.padEnd(20) +
      median(samples.map((s) => s.importMs)).toFixed(0).padStart(11) +
      median(samples.map((s) => s.processMs)).toFixed(0).padStart(13) +
      median(samples.map((s) => s.rssMB)).toFixed(0).padStart(10) +
      heap.toFixed(1).padStart(14) +
      median(samples.map((s) => s.retainedMB)).toFixed(1).padStart(14) +
      `${(heap / effectHeap).toFixed(2)}x`.padStart(17)
  )
}

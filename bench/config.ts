/**
 * Load times of large configuration files: a JSON file of 50,000 buckets (about 11 MB) and, for comparison, a
 * YAML file of a few thousand, each read with `ConfigFile.readSync` and `ConfigFile.load`, and split into its
 * two steps: parsing the text, and decoding it with the schema (`Quota.decodeSettings`).
 *
 * Run:  npx tsx bench/config.ts
 *       BUCKETS=20000 YAML_BUCKETS=1000 npx tsx bench/config.ts    (other sizes)
 *       RUNS=5 npx tsx bench/config.ts                             (more timed runs; the median is printed)
 * A step is timed RUNS times (default 3), but no more once it has taken 10 seconds in all, so that a slow step
 * still ends.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Either } from "effect"
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import os from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { parse as parseYaml, stringify as stringifyYaml } from "yaml"
import { ConfigFile, Quota } from "../src/index.js"

const BUCKETS = Number(process.env.BUCKETS ?? 50_000)
const YAML_BUCKETS = Number(process.env.YAML_BUCKETS ?? 3_000)
const RUNS = Number(process.env.RUNS ?? 3)
const BUDGET_MS = 10_000

/** A configuration of `n` buckets shaped like a generated one: two or three quotas each, some options set. */
const configOf = (n: number) => {
  const buckets: Record<string, unknown> = {}
  for (let i = 0; i < n; i++) {
    const quotas: Array<Record<string, unknown>> = [
      { metric: "requests", limit: 500 + (i % 100), window: "1 minute" },
      { metric: "tokens", limit: 30_000 + i, window: 60_000, algorithm: "sliding-window" }
    ]
    if (i % 4 === 0) quotas.push({ metric: "concurrent", limit: 16, algorithm: "concurrency", refunds: false })
    buckets[`tenant-${String(i).padStart(5, "0")}/model-${i % 7}`] = {
      quotas,
      ...(i % 2 === 0 ? { safetyRatio: 0.9, skew: "5 millis" } : { burstMultiplier: 1.5, maxQueue: 10_000 })
    }
  }
  return { provider: "openai", retry: { maxAttempts: 3, baseDelay: "250 millis" }, buckets }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

const time = async (f: () => unknown): Promise<{ ms: number; runs: number }> => {
  const runs: Array<number> = []
  let spent = 0
  while (runs.length < RUNS && (runs.length === 0 || spent < BUDGET_MS)) {
    const start = performance.now()
    await f()
    const ms = performance.now() - start
    runs.push(ms)
    spent += ms
  }
  return { ms: median(runs), runs: runs.length }
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`)

const decoded = (raw: unknown): Quota.Settings => {
  const settings = Effect.runSync(Effect.either(Quota.decodeSettings(raw)))
  if (Either.isLeft(settings)) throw new Error(settings.left.message)
  return settings.right
}

const loadEffect = (path: string) => Effect.runPromise(ConfigFile.load(path).pipe(Effect.provide(NodeFileSystem.layer)))

const dir = mkdtempSync(join(os.tmpdir(), "quotaflow-bench-config-"))
try {
  const jsonPath = join(dir, "large.json")
  const yamlPath = join(dir, "large.yaml")
  // Compact, as a program writes a file of this size.
  const jsonText = JSON.stringify(configOf(BUCKETS))
  const yamlText = stringifyYaml(configOf(YAML_BUCKETS))
  writeFileSync(jsonPath, jsonText)
  writeFileSync(yamlPath, yamlText)
  const rawJson: unknown = JSON.parse(jsonText)
  const rawYaml: unknown = parseYaml(yamlText)
  // Both files must be valid, or the times below would be those of an early failure.
  if (decoded(rawJson).buckets.size !== BUCKETS || decoded(rawYaml).buckets.size !== YAML_BUCKETS) {
    throw new Error("the generated configurations did not decode to every bucket")
  }

  const step = async (name: string, f: () => unknown) => {
    const result = await time(f)
    console.log(`${name.padEnd(44)}  ${fmt(result.ms).padStart(10)}  (${result.runs} run${result.runs === 1 ? "" : "s"})`)
  }
  const size = (path: string) => `${(statSync(path).size / 1e6).toFixed(1)} MB`
  console.log(`node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  console.log(`JSON: ${BUCKETS.toLocaleString("en-US")} buckets, ${size(jsonPath)}; YAML: ${YAML_BUCKETS.toLocaleString("en-US")} buckets, ${size(yamlPath)}\n`)

  await step("JSON  parse (JSON.parse)", () => JSON.parse(jsonText))
  await step("JSON  decode (Quota.decodeSettings)", () => decoded(rawJson))
  await step("JSON  ConfigFile.readSync", () => ConfigFile.readSync(jsonPath))
  await step("JSON  ConfigFile.load", () => loadEffect(jsonPath))
  await step("YAML  parse (yaml)", () => parseYaml(yamlText))
  await step("YAML  decode (Quota.decodeSettings)", () => decoded(rawYaml))
  await step("YAML  ConfigFile.readSync", () => ConfigFile.readSync(yamlPath))
  await step("YAML  ConfigFile.load", () => loadEffect(yamlPath))
} finally {
  rmSync(dir, { recursive: true, force: true })
}

/**
 * How the benches load quotaflow: the TypeScript source through tsx (the default), or, with
 * `QUOTAFLOW_FROM=build`, the JavaScript that `tsc` emits for it (what `npm run build` ships), compiled here into
 * `bench/.build/` (git-ignored). The two differ: tsx compiles with esbuild's `keepNames`, which wraps every
 * function expression in `__name(fn, "name")` (an own `name` property per closure); tsc does not.
 */
import { execFileSync } from "node:child_process"
import { existsSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

export type Quotaflow = typeof import("../src/index.js")

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..")

/**
 * The commit the benches ran on and how many files under src/ differ from it (read-only: no index refresh is
 * written, `GIT_OPTIONAL_LOCKS=0`), for the printed header: src/ changes while the benches are run.
 */
export const revision = (): string => {
  try {
    const git = (args: ReadonlyArray<string>) =>
      execFileSync("git", args, { cwd: root, stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, GIT_OPTIONAL_LOCKS: "0" } }).toString().trim()
    const head = git(["rev-parse", "--short", "HEAD"])
    const changed = git(["status", "--porcelain", "--", "src"]).split("\n").filter((line) => line.length > 0).length
    return `${head}${changed > 0 ? ` + ${changed} changed files in src/` : ""}`
  } catch {
    return "unknown (no git)"
  }
}

/** Compiles `src/index.ts` and what it imports with tsc into `bench/.build/`; returns the module. */
export const loadBuild = async (): Promise<Quotaflow> => {
  const out = join(here, ".build")
  rmSync(out, { recursive: true, force: true })
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const args = [
    tsc, join(root, "src/index.ts"), "--outDir", out, "--rootDir", join(root, "src"),
    "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2022", "--types", "node",
    "--strict", "--esModuleInterop", "--skipLibCheck", "--declaration", "false", "--sourceMap", "false"
  ]
  try {
    execFileSync(process.execPath, args, { cwd: root, stdio: "pipe" })
  } catch (error) {
    // Type errors still emit; only a missing output is fatal.
    if (!existsSync(join(out, "index.js"))) throw error
    process.stderr.write("note: tsc reported type errors in src/ (emitted anyway)\n")
  }
  // The Redis backend reads its Lua at load time, next to the compiled modules.
  execFileSync(process.execPath, [join(root, "scripts/copy-lua.mjs"), out], { cwd: root, stdio: "pipe" })
  return (await import(pathToFileURL(join(out, "index.js")).href)) as Quotaflow
}

/**
 * The source (default) or the tsc build, as `QUOTAFLOW_FROM` says, with a label for the printed header and a way
 * to import one of its modules by its path under src/ (`internal/scheduler`), from the same place.
 */
export const loadQuotaflow = async (): Promise<{ quotaflow: Quotaflow; from: string; module: (path: string) => Promise<unknown> }> => {
  if (process.env.QUOTAFLOW_FROM === "build") {
    const quotaflow = await loadBuild()
    return { quotaflow, from: "tsc build of src/ (bench/.build)", module: (path) => import(pathToFileURL(join(here, ".build", `${path}.js`)).href) }
  }
  return { quotaflow: await import("../src/index.js"), from: "src/ through tsx", module: (path) => import(`../src/${path}.js`) }
}

/**
 * The sources behind the package's export paths, for tests that run code written against the published names
 * (`quotaflow`, `quotaflow/emulator`) on the sources instead of the build.
 */
import { readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const exportsMap = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, { readonly default: string } | string | null>
}).exports

/**
 * The source file (absolute) behind an export path: `sourceOf("quotaflow/emulator")` is `<root>/src/emulator/index.ts`.
 * Throws for a path the package does not export, as Node would.
 */
export const sourceOf = (specifier: string): string => {
  const subpath = specifier === "quotaflow" ? "." : `.${specifier.slice("quotaflow".length)}`
  const target = exportsMap[subpath]
  if (target === undefined || target === null || typeof target === "string") throw new Error(`${specifier} is not exported`)
  return join(root, target.default.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))
}

/**
 * `code` with every `from "quotaflow…"` pointing at the sources, relative to the directory it will be written to.
 * The `.js` ending is what the sources' own imports use, and what tsx and vitest map back to `.ts`.
 */
export const onSources = (code: string, directory: string): string =>
  code.replace(/from "(quotaflow(?:\/[\w/]+)?)"/g, (_, specifier: string) => {
    const path = relative(directory, sourceOf(specifier)).replace(/\.ts$/, ".js")
    return `from "${path.startsWith(".") ? path : `./${path}`}"`
  })

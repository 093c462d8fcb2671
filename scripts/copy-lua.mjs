// Copies the Lua of the Redis backend (src/**/*.lua) into dist/ (or the directory given) at the same paths: tsc
// compiles the modules that read it at load time (new URL("./lua/...", import.meta.url)) but copies no other file.
import { cpSync, readdirSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const src = join(root, "src")
const dist = process.argv[2] ?? join(root, "dist")

let copied = 0
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".lua")) continue
  // parentPath from Node 20.12 on; path before it.
  const from = join(entry.parentPath ?? entry.path, entry.name)
  cpSync(from, join(dist, relative(src, from)))
  copied++
}
if (copied === 0) throw new Error("copy-lua: no .lua file under src/")
console.log(`copy-lua: ${copied} files into ${relative(root, dist) || "."}/`)

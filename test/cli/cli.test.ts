import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const main = "src/cli/main.ts"

const stripAnsi = (text: string): string => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

const collect = (child: ChildProcess): Promise<Finished> =>
  new Promise((resolve, reject) => {
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code, signal) => resolve({ code, signal, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr) }))
  })

/** Runs `npx tsx src/cli/main.ts ...args` to its end. */
const cli = (...args: ReadonlyArray<string>): Promise<Finished> =>
  collect(spawn("npx", ["tsx", main, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] }))

const emulateFlags = [
  "--port",
  "--host",
  "--style",
  "--algo",
  "--window-ms",
  "--rpm",
  "--tpm",
  "--itpm",
  "--otpm",
  "--no-limit-headers",
  "--latency-base-ms",
  "--latency-per-token-ms"
]
const demoFlags = ["--style", "--algo", "--calls", "--window-ms", "--seed", "--skew-ms"]

/** The text of each option's entry in a help page (from its heading to the next option). */
const optionEntries = (help: string): Map<string, string> => {
  const entries = new Map<string, string>()
  const parts = help.split(/\n(?=--[a-z-]+|\(-h, --help\))/)
  for (const part of parts) {
    const name = /^(--[a-z-]+)/.exec(part)?.[1]
    if (name !== undefined) entries.set(name, part)
  }
  return entries
}

describe("quotaflow CLI", () => {
  it("--help lists both commands", async () => {
    const result = await cli("--help")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("emulate")
    expect(result.stdout).toContain("demo")
    expect(result.stdout).toContain("Rate limiting for LLM API calls")
  }, 30_000)

  const describesEvery = (help: string, flags: ReadonlyArray<string>) => {
    const entries = optionEntries(help)
    for (const flag of flags) {
      const entry = entries.get(flag)
      expect(entry, `${flag} is listed`).toBeDefined()
      // Besides its heading, its type line and "This setting is optional.", every option has its own description.
      const description = (entry ?? "").split("\n").map((line) => line.trim()).filter((line) =>
        line !== "" && !line.startsWith("--") && !line.startsWith("This setting") &&
        !/^(An integer|A floating|A true or false|A user-defined|One of the following)/.test(line)
      )
      expect(description.length, `${flag} has a description`).toBeGreaterThan(0)
    }
  }

  it("emulate --help describes every option", async () => {
    const result = await cli("emulate", "--help")
    expect(result.code).toBe(0)
    describesEvery(result.stdout, emulateFlags)
  }, 30_000)

  it("demo --help describes every option", async () => {
    const result = await cli("demo", "--help")
    expect(result.code).toBe(0)
    describesEvery(result.stdout, demoFlags)
  }, 30_000)

  it("demo --bogus exits with code 2 and names the flag", async () => {
    const result = await cli("demo", "--bogus")
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--bogus")
    expect(result.stderr).toContain("quotaflow demo --help")
  }, 30_000)

  it("a bad value exits with code 2", async () => {
    const result = await cli("emulate", "--style", "openai", "--otpm", "100")
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--otpm")
  }, 30_000)

  it("emulate serves on a free port until SIGINT", async () => {
    // npm does not pass SIGINT on to the command it runs, so this one starts tsx itself: the signal then reaches
    // the CLI as a Ctrl-C in a terminal would.
    const child = spawn(join(root, "node_modules", ".bin", "tsx"), [main, "emulate", "--port", "0", "--rpm", "5"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const finished = collect(child)
    const url = await new Promise<string>((resolve, reject) => {
      let out = ""
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 20_000)
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
        if (match?.[1] !== undefined) {
          clearTimeout(timer)
          resolve(match[1])
        }
      })
    })
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", max_tokens: 16, messages: [{ role: "user", content: "hello" }] })
    })
    expect(response.status).toBe(200)
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("5")
    const body: unknown = await response.json()
    expect(body).toMatchObject({ object: "chat.completion", usage: { prompt_tokens: 2 } })

    child.kill("SIGINT")
    const result = await finished
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("quotaflow emulator stopped")
    await expect(fetch(`${url}/stats`)).rejects.toThrow()
  }, 30_000)
})

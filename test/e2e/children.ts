/**
 * Worker processes for the end-to-end tests: `test/e2e/worker.ts` (or another script speaking the same way:
 * settings as JSON in `QUOTAFLOW_E2E`, commands and reports over IPC, an `error` report when something failed)
 * forked with `node --import tsx`. Every wait is bounded; a child that dies or reports an error fails the wait
 * at once, with its stderr in the message. `stopAll` kills whatever is still running.
 */
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { Command, Report, WorkerSettings } from "./worker.js"

const workerPath = fileURLToPath(new URL("./worker.ts", import.meta.url))
const root = fileURLToPath(new URL("../..", import.meta.url))

const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

/** What every child script reports: typed by `type`; `{ type: "error", message }` fails every wait. */
interface AnyReport {
  readonly type: string
}

type ReportOf<R extends AnyReport, T extends R["type"]> = Extract<R, { readonly type: T }>

const errorMessage = (report: AnyReport): string | undefined =>
  report.type === "error" && "message" in report && typeof report.message === "string" ? report.message : undefined

/**
 * One worker process.
 *
 * @example
 * ```ts
 * const child = Child.fork({ name: "w0", redisUrl, emulatorUrl, namespace, limiter })
 * await child.next("ready", 20_000)
 * child.send({ type: "go", calls })
 * ```
 */
export class Child<C extends object = Command, R extends AnyReport = Report> {
  readonly reports: Array<R> = []
  private stderr = ""
  private readonly listeners = new Set<() => void>()
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined
  readonly exited: Promise<void>
  /** How many reports of each type the waits have consumed. */
  private readonly consumed = new Map<string, number>()

  private constructor(readonly name: string, private readonly process: ChildProcess) {
    live.add(process)
    process.stderr?.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString("utf8")).slice(-4_000)
    })
    process.stdout?.resume()
    process.on("message", (report: R) => {
      this.reports.push(report)
      this.changed()
    })
    this.exited = new Promise((resolve) => {
      process.once("exit", (code, signal) => {
        this.exitInfo = { code, signal }
        live.delete(process)
        this.changed()
        resolve()
      })
    })
  }

  static fork(settings: WorkerSettings): Child {
    return Child.forkScript<Command, Report>(workerPath, settings)
  }

  /** Forks another child script (a path), with its own commands `C` and reports `R`. */
  static forkScript<C extends object, R extends AnyReport, S extends { readonly name: string } = { readonly name: string }>(
    script: string,
    settings: S
  ): Child<C, R> {
    const child = fork(script, [], {
      cwd: root,
      execArgv: ["--import", "tsx"],
      env: { ...process.env, QUOTAFLOW_E2E: JSON.stringify(settings) },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json"
    })
    return new Child<C, R>(settings.name, child)
  }

  get pid(): number | undefined {
    return this.process.pid
  }

  get running(): boolean {
    return this.exitInfo === undefined
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener()
  }

  send(command: C): void {
    if (!this.running || !this.process.connected) throw new Error(`${this.name} is not running`)
    this.process.send(command)
  }

  /** All reports of a type received so far. */
  all<T extends R["type"]>(type: T): Array<ReportOf<R, T>> {
    return this.reports.filter((r): r is ReportOf<R, T> => r.type === type)
  }

  /**
   * Waits until `count` reports of `type` have arrived beyond those earlier waits consumed, and returns them.
   * Fails on an `error` report, on the child's exit, or after `timeoutMs`.
   */
  next<T extends R["type"]>(type: T, timeoutMs: number, count = 1): Promise<Array<ReportOf<R, T>>> {
    return new Promise((resolve, reject) => {
      const from = this.consumed.get(type) ?? 0
      const finish = (error: Error | undefined, value?: Array<ReportOf<R, T>>) => {
        clearTimeout(timer)
        this.listeners.delete(check)
        if (error !== undefined) reject(error)
        else resolve(value!)
      }
      const check = () => {
        const error = this.reports.map(errorMessage).find((message) => message !== undefined)
        if (error !== undefined) return finish(new Error(`${this.name} reported: ${error}\n${this.stderr}`))
        const found = this.all(type)
        if (found.length >= from + count) {
          this.consumed.set(type, from + count)
          return finish(undefined, found.slice(from, from + count))
        }
        if (this.exitInfo !== undefined) {
          return finish(
            new Error(
              `${this.name} exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal}) before ${count} "${type}" report(s); ` +
                `got ${found.length - from}\n${this.stderr}`
            )
          )
        }
      }
      const timer = setTimeout(
        () =>
          finish(new Error(`${this.name}: no ${count} "${type}" report(s) within ${timeoutMs} ms; got ${this.all(type).length - from}\n${this.stderr}`)),
        timeoutMs
      )
      this.listeners.add(check)
      check()
    })
  }

  /** Sends a signal and waits (at most `timeoutMs`) until the process is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL", timeoutMs = 5_000): Promise<void> {
    if (!this.running) return
    this.process.kill(signal)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} still running ${timeoutMs} ms after ${signal}`)), timeoutMs)
    })
    try {
      await Promise.race([this.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Kills every child still running and waits until they are gone. */
export const stopAll = async (children: Iterable<Child<object, AnyReport>>): Promise<void> => {
  await Promise.allSettled([...children].map((child) => child.kill("SIGKILL")))
}


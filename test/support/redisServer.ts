/**
 * Throwaway Redis servers for tests and benchmarks: `redis-server` on a free loopback port, no persistence,
 * killed at the end (or mid-test, to simulate an outage, and started again on the same port with its state lost).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Effect, type Scope } from "effect"

const run = promisify(execFile)

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

const taken = new Set<number>()

/**
 * A loopback port nobody listens on. With `bus`, port + 10000 is free too (a cluster node's bus port).
 *
 * @example
 * ```ts
 * const port = await freePort()
 * ```
 */
export const freePort = async (bus = false): Promise<number> => {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000)
    if (taken.has(port)) continue
    if ((await canListen(port)) && (!bus || (await canListen(port + 10_000)))) {
      taken.add(port)
      return port
    }
  }
  throw new Error("no free port found")
}

/**
 * Sends one inline command and resolves with the first reply line, or `undefined` if nothing answers in time.
 *
 * @example
 * ```ts
 * const pong = await inlineCommand(6379, "PING") // "+PONG"
 * ```
 */
export const inlineCommand = (port: number, command: string, timeoutMs = 200): Promise<string | undefined> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    let data = ""
    const done = (value: string | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(value)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    socket.once("error", () => done(undefined))
    socket.on("connect", () => socket.write(`${command}\r\n`))
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      const end = data.indexOf("\r\n")
      if (end >= 0) done(data.slice(0, end))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

/**
 * How to start a server: `{ cluster: true }`, `{ port: 7000, args: ["--maxmemory", "10mb"] }`.
 */
export interface RedisServerOptions {
  /** Defaults to a free port. */
  readonly port?: number
  /** Start as a cluster node (`--cluster-enabled yes`). */
  readonly cluster?: boolean
  /** More `redis-server` arguments. */
  readonly args?: ReadonlyArray<string>
}

/**
 * One `redis-server` process.
 *
 * @example
 * ```ts
 * const server = await RedisServer.start()
 * await server.stop()     // an outage: the process is killed
 * await server.restart()  // back on the same port, empty
 * await server.close()
 * ```
 */
export class RedisServer {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  private constructor(readonly port: number, private readonly dir: string, private readonly args: ReadonlyArray<string>) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.child !== undefined
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const port = options.port ?? (await freePort(options.cluster === true))
    const dir = mkdtempSync(join(tmpdir(), "quotaflow-redis-"))
    const args = [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
      "--dir", dir,
      "--logfile", join(dir, "redis.log"),
      ...(options.cluster === true
        ? ["--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"), "--cluster-node-timeout", "2000"]
        : []),
      ...(options.args ?? [])
    ]
    const server = new RedisServer(port, dir, args)
    await server.restart()
    return server
  }

  /** Starts the process (again) and waits until it answers PING. */
  async restart(): Promise<void> {
    if (this.child !== undefined) return
    const child = spawn("redis-server", [...this.args], { stdio: "ignore" })
    live.add(child)
    this.child = child
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()))
    void this.exited.then(() => {
      live.delete(child)
      if (this.child === child) this.child = undefined
    })
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (this.child !== child) throw new Error(`redis-server on port ${this.port} exited at start`)
      if ((await inlineCommand(this.port, "PING")) === "+PONG") return
      await sleep(20)
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING`)
  }

  /** Kills the process (SIGKILL: no goodbye to the clients) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child
    if (child === undefined) return
    child.kill("SIGKILL")
    child.kill("SIGCONT")
    await this.exited
    this.child = undefined
  }

  /** Freezes the process (SIGSTOP): connections stay open and nothing answers, like a hung server. */
  pause(): void {
    this.child?.kill("SIGSTOP")
  }

  /** Lets a paused process run again (SIGCONT). */
  resume(): void {
    this.child?.kill("SIGCONT")
  }

  /** Stops the process and removes its directory. */
  async close(): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Runs `redis-cli` against this server and returns its output. */
  async cli(...args: ReadonlyArray<string>): Promise<string> {
    const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(this.port), ...args])
    return stdout
  }
}

/**
 * Three (or `masters`) cluster nodes joined into one cluster with no replicas, ready when every node reports
 * `cluster_state:ok`.
 *
 * @example
 * ```ts
 * const nodes = await startCluster(3)
 * const cluster = new Cluster(nodes.map((n) => ({ host: "127.0.0.1", port: n.port })))
 * ```
 */
export const startCluster = async (masters = 3): Promise<ReadonlyArray<RedisServer>> => {
  const nodes: Array<RedisServer> = []
  try {
    for (let i = 0; i < masters; i++) nodes.push(await RedisServer.start({ cluster: true }))
    await run("redis-cli", [
      "--cluster", "create",
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      "--cluster-replicas", "0",
      "--cluster-yes"
    ])
    const deadline = Date.now() + 20_000
    for (;;) {
      const states = await Promise.all(nodes.map((node) => node.cli("cluster", "info")))
      if (states.every((info) => info.includes("cluster_state:ok"))) return nodes
      if (Date.now() > deadline) throw new Error(`cluster not ok: ${states.join(" | ")}`)
      await sleep(100)
    }
  } catch (error) {
    await Promise.all(nodes.map((node) => node.close()))
    throw error
  }
}

/**
 * A Redis server for the lifetime of the scope.
 *
 * @example
 * ```ts
 * it.scopedLive("works", () => Effect.gen(function*() {
 *   const server = yield* redisServer()
 *   // ... use server.url
 * }))
 * ```
 */
export const redisServer = (options?: RedisServerOptions): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => RedisServer.start(options)),
    (server) => Effect.promise(() => server.close())
  )

/**
 * A Redis Cluster of `masters` nodes for the lifetime of the scope.
 *
 * @example
 * ```ts
 * const nodes = yield* redisCluster(3)
 * ```
 */
export const redisCluster = (masters = 3): Effect.Effect<ReadonlyArray<RedisServer>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startCluster(masters)),
    (nodes) => Effect.promise(() => Promise.all(nodes.map((node) => node.close()))).pipe(Effect.asVoid)
  )

/**
 * The number of calls of each command in `INFO commandstats` (`{ evalsha: 12, ... }`).
 *
 * @example
 * ```ts
 * const calls = commandCalls(await client.info("commandstats"))
 * ```
 */
export const commandCalls = (info: string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[match[1]] = Number(match[2])
  return out
}

/**
 * A throwaway `redis-server` for the multi-process demo: on a free loopback port, no persistence, a directory of
 * its own, stopped (and its directory removed) when the scope closes, and killed if the process exits first.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { throwawayRedis } from "./RedisServer.js"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const redis = yield* throwawayRedis
 *   yield* Effect.log(`redis on ${redis.url}`)
 * }))
 * ```
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { Data, Effect, type Scope } from "effect"

/**
 * No throwaway Redis could be had: `redis-server` is not installed, or it did not start.
 *
 * @example
 * ```ts
 * new RedisServerError({ message: "redis-server is not installed" })
 * ```
 */
export class RedisServerError extends Data.TaggedError("RedisServerError")<{ readonly message: string }> {}

/**
 * A running server.
 *
 * @example
 * ```ts
 * const server: RunningRedis = { url: "redis://127.0.0.1:41234", pid: 4242 }
 * ```
 */
export interface RunningRedis {
  readonly url: string
  readonly pid: number | undefined
}

// Servers still running and their directories, for a process that exits without closing its scopes (a repeated
// Ctrl-C, process.exit).
const live = new Set<ChildProcess>()
const dirs = new Set<string>()
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/**
 * The path of `redis-server` on `PATH`, if any.
 *
 * @example
 * ```ts
 * findRedisServer() // "/usr/bin/redis-server"
 * ```
 */
export const findRedisServer = (path: string = process.env.PATH ?? ""): string | undefined => {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue
    const candidate = join(dir, "redis-server")
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // Not here.
    }
  }
  return undefined
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const ping = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), 200)
    socket.once("error", () => done(false))
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => done(chunk.toString("utf8").startsWith("+PONG")))
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Started {
  readonly child: ChildProcess
  readonly port: number
  readonly dir: string
  readonly exited: Promise<void>
}

const stop = async (server: Started): Promise<void> => {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL")
  await server.exited
  rmSync(server.dir, { recursive: true, force: true })
  dirs.delete(server.dir)
}

/** Starts `redis-server` and waits until it answers; tries a few ports in case another process took one first. */
const start = async (binary: string): Promise<Started> => {
  let lastError = "did not start"
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), "quotaflow-demo-redis-"))
    dirs.add(dir)
    const child = spawn(
      binary,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", join(dir, "redis.log")],
      { stdio: "ignore" }
    )
    live.add(child)
    let failed: string | undefined
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child)
        failed = `exited at start (code ${code}, signal ${signal})`
        resolve()
      })
      child.once("error", (error) => {
        live.delete(child)
        failed = error.message
        resolve()
      })
    })
    const server: Started = { child, port, dir, exited }
    const deadline = Date.now() + 10_000
    while (failed === undefined && Date.now() < deadline) {
      if (await ping(port)) return server
      await sleep(20)
    }
    lastError = failed ?? "did not answer PING within 10 s"
    await stop(server)
  }
  throw new Error(lastError)
}

/**
 * A throwaway `redis-server` for the lifetime of the scope; fails when it is not installed or does not start.
 *
 * @example
 * ```ts
 * const url = yield* Effect.map(throwawayRedis, (redis) => redis.url)
 * ```
 */
export const throwawayRedis: Effect.Effect<RunningRedis, RedisServerError, Scope.Scope> = Effect.gen(function*() {
  const binary = findRedisServer()
  if (binary === undefined) {
    return yield* new RedisServerError({
      message: "redis-server is not installed (it is not on PATH): install it, or pass --redis URL to use a running Redis"
    })
  }
  const server = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => start(binary),
      catch: (error) => new RedisServerError({ message: `${binary} could not start: ${error instanceof Error ? error.message : String(error)}` })
    }),
    (server) => Effect.promise(() => stop(server))
  )
  return { url: `redis://127.0.0.1:${server.port}`, pid: server.child.pid }
})

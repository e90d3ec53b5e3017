/**
 * What the roles of a worker group (the supervisor in the main thread, a worker node in
 * each worker) promise to the server, and the options that choose them.
 *
 * @module
 */

import type { BackplaneFactory } from "../../core/backplane.ts";
import type { WebSocketManager } from "../../core/manager.ts";
import type { WorkersBackplaneOptions } from "../../backplane/workers/topology.ts";
import type { NetAddr } from "../../net/tcp.ts";
import type { TlsReloadOptions } from "../../transport/tls/server_context.ts";
import type { ClusterStats, NodeStats } from "./stats.ts";

/**
 * How a worker group gets its connections: `"reuseport"`, each worker listens on the
 * port with SO_REUSEPORT (Linux balances them); `"main"`, the main thread accepts and hands
 * each connection to the least loaded worker.
 */
export type WorkerAccept = "reuseport" | "main";

/** The options of `serve()` about workers (part of `ServeOptions`). */
export interface ClusterOptions {
  /**
   * Serve with this many workers (`"auto"`: one per core, `navigator.hardwareConcurrency`).
   * The program's main module runs once more in each worker, where the same `serve()` call
   * serves as that worker: top-level code runs once per worker plus once in the main
   * thread (see `workerIndex()`). Default: no workers, one manager on this thread.
   */
  workers?: number | "auto";
  /** Default `"reuseport"` on Linux, `"main"` elsewhere. See {@link WorkerAccept}. */
  workerAccept?: WorkerAccept;
  /** The module each worker runs. Default `Deno.mainModule`. */
  workerModule?: string | URL;
  /** Start a worker again after an uncaught exception ended it. Default true. */
  restartWorkers?: boolean;
  /** Settings of the cross-worker backplane (ring size, overflow queue, stall timeout). */
  workerBackplane?: WorkersBackplaneOptions;
}

/** What `shutdown()` is given. */
export interface ShutdownOptions {
  /** Close code. Default 1001. */
  code?: number;
  /** Close reason. */
  reason?: string;
  /** How long closing handshakes may take (ms). Default 5000. */
  timeout?: number;
}

/** The options of `serve()` this module reads. */
export interface ClusterServeOptions extends ClusterOptions {
  hostname?: string;
  port?: number;
  backlog?: number;
  ipv6Only?: boolean;
  signals?: boolean | ((signal: "SIGINT" | "SIGTERM") => void | Promise<void>);
  backplane?: BackplaneFactory;
  manager?: unknown;
}

/**
 * The server of this thread, as the group sees it.
 *
 * @typeParam S The server's counters.
 */
export interface ClusterServer<S> {
  /** The server's manager. */
  readonly manager: WebSocketManager<unknown>;
  /** The server's counters (the listener updates `droppedAtLimit`). */
  readonly stats: { droppedAtLimit: number };
  /** Runs the HTTP phase of an accepted, non-blocking descriptor. */
  accept(fd: number, host: string, port: number): void;
  /** The server's graceful shutdown. */
  shutdown(options: ShutdownOptions): Promise<void>;
  /** This thread's counters. */
  snapshot(): NodeStats<S>;
  /** Reports an error to the application (the manager's error handler). */
  reportError(error: unknown): void;
  /** Replaces this thread's TLS certificates (a worker, told by the main thread). */
  reloadTls(options: TlsReloadOptions): void;
  /** Called once every worker listens (main thread only). */
  onListen?: (address: NetAddr) => void;
}

/**
 * The worker group of a server, `server.workers` (null without workers).
 *
 * @typeParam S The server's counters.
 *
 * @example
 * ```ts
 * import { serve } from "../serve.ts";
 *
 * const server = serve({ workers: 4, port: 8080, websocket: {} });
 * if (server.workers?.role === "main") {
 *   await server.workers.ready;
 *   const s = await server.workers.stats();
 *   console.log(s.total.connections, s.workers.map((w) => w.stats?.connections));
 * }
 * ```
 */
export interface WorkerGroup<S> {
  /** `"main"` in the main thread, `"worker"` in a worker. */
  readonly role: "main" | "worker";
  /** This worker's index (0-based); -1 in the main thread. */
  readonly index: number;
  /** Number of workers (in a worker: 0 until it has joined). */
  readonly count: number;
  /**
   * Main thread: resolves once every worker listens; rejects when one could not start (the
   * group then stops). Worker: resolves once this worker listens.
   */
  readonly ready: Promise<void>;
  /** Workers restarted after a crash so far. */
  readonly restarts: number;
  /**
   * Every worker's counters (asked by message, 1 s at most each) and their sums. In a
   * worker, asked from the main thread; rejects with a `ClusterError`
   * (`"STATS_UNAVAILABLE"`) when the worker is stopping or the main thread does not answer
   * within 3 s.
   */
  stats(): Promise<ClusterStats<S>>;
}

/**
 * A server's part in a group: the backplane its manager uses, where it listens, what
 * happens at shutdown.
 *
 * @typeParam S The server's counters.
 */
export interface ClusterRole<S> {
  /** `server.workers`. */
  readonly group: WorkerGroup<S>;
  /** The backplane for this thread's manager (composed with the user's, if any). */
  readonly backplane: BackplaneFactory;
  /**
   * Takes the resources that can fail at once (main thread: the port, the shared
   * structures) and returns the address the server reports. Called once the server's
   * manager exists, before it starts.
   *
   * @throws {SyscallError} when the port cannot be bound (nothing is left open).
   */
  listen(): NetAddr;
  /**
   * The server could not start after `listen()` (its manager refused its options):
   * release what `listen()` took. Nothing else is called afterwards.
   */
  abandon(): void;
  /**
   * Main thread: every worker replaces its TLS certificates, now and after a restart.
   * A worker: nothing (its server reloads its own).
   */
  reloadTls(options: TlsReloadOptions): void;
  /** Whether this thread's server handles SIGINT/SIGTERM (the main thread only). */
  readonly signals: boolean;
  /** Starts (spawns the workers, or joins the group), once the server's manager runs. */
  start(server: ClusterServer<S>): void;
  /**
   * Called first by the server's shutdown: the main thread stops accepting and drains
   * every worker (each closes its connections with `code`); a worker stops listening.
   */
  stopAccepting(options: ShutdownOptions): Promise<void>;
}

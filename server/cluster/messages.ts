/**
 * What the main thread and its workers say to each other with `postMessage`. Every
 * message is an object with an `fdws` field, so that an application's own messages on the
 * same channel are left alone.
 *
 * @module
 */

import type { WorkersTopology } from "../../backplane/workers/topology.ts";
import type { TlsReloadOptions } from "../../transport/tls/server_context.ts";
import type { ClusterStats, NodeStats } from "./stats.ts";

/** Main thread to worker. */
export type ToWorker =
  | {
    /** The answer to "hello": join the group. */
    fdws: "init";
    topology: WorkersTopology;
    /** The worker's node index in the topology (index + 1). */
    node: number;
    /** The worker's port to each other node (messages transport), null for itself. */
    ports: (MessagePort | null)[] | null;
    /** True: listen on the group's port; false: connections come from the main thread. */
    listen: boolean;
    /** Shared load counters (connections per worker), for the main thread's choice. */
    loads: SharedArrayBuffer;
  }
  | {
    /** An accepted connection for this worker: it runs the HTTP phase on the descriptor. */
    fdws: "conn";
    fd: number;
    host: string;
    port: number;
  }
  | { fdws: "stats"; id: number }
  | {
    /** The answer to a worker's "groupStats": every worker's counters. */
    fdws: "groupStats";
    id: number;
    stats: ClusterStats<unknown>;
  }
  | { fdws: "shutdown"; code: number; reason: string; timeout: number }
  | {
    /** New TLS certificates (`server.reloadTls()` in the main thread). */
    fdws: "reloadTls";
    options: TlsReloadOptions;
  };

/** Worker to main thread. */
export type ToMain =
  | { fdws: "hello" }
  | { fdws: "ready" }
  | { fdws: "failed"; error: string }
  | { fdws: "stats"; id: number; stats: NodeStats<unknown> }
  | {
    /** A worker asks for the whole group's counters (its `server.workers.stats()`). */
    fdws: "groupStats";
    id: number;
  }
  | { fdws: "crashed"; error: string }
  | { fdws: "exited" };

/** True when `data` is one of this protocol's messages. */
export function isOurs(data: unknown): data is { fdws: string } {
  return typeof data === "object" && data !== null &&
    typeof (data as { fdws?: unknown }).fdws === "string";
}

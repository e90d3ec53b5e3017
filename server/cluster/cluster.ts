/**
 * `serve({ workers: N })`: one WebSocket manager per Deno Worker, each on its own poller,
 * sharing topics through the cross-worker backplane. Like Node's cluster module, the
 * program's main module runs once more in each worker; there the same `serve()` call
 * finds out, from the worker's name, that it is worker i, and serves as such. In the main
 * thread `serve()` returns the supervising server: its manager serves no client but is a
 * node of the backplane (`server.manager.publish()` reaches every worker), and it starts,
 * watches, restarts and stops the workers.
 *
 * Listening: on Linux each worker has its own SO_REUSEPORT listener and the kernel
 * spreads the connections (`workerAccept: "reuseport"`, the default there). macOS and
 * FreeBSD do not balance SO_REUSEPORT, so there, and everywhere with `workerAccept:
 * "main"`, the main thread accepts and hands each descriptor to the least loaded worker
 * (descriptors are process-wide), which runs the HTTP phase on it.
 *
 * This module is what `server/serve.ts` calls; it does not import it (the Server is seen
 * through {@link ClusterServer}).
 *
 * @module
 */

import type { ClusterRole, ClusterServeOptions } from "./contract.ts";
import { ClusterError } from "./errors.ts";
import { thisWorker } from "./role.ts";
import { Supervisor } from "./supervisor.ts";
import { WorkerNode } from "./worker_node.ts";

let supervising = false;
let joined = false;

/**
 * The server's role in a group, or null when `options.workers` is not set (or 0). Opens
 * nothing (see {@link ClusterRole.listen}).
 *
 * @throws {ClusterError} `INVALID_OPTION`, `ALREADY_RUNNING`.
 */
export function joinCluster<S>(options: ClusterServeOptions): ClusterRole<S> | null {
  const workers = options.workers;
  if (workers === undefined || workers === 0) return null;
  const count = workers === "auto" ? Math.max(1, navigator.hardwareConcurrency) : workers;
  if (!Number.isInteger(count) || count < 1 || count > 1023) {
    throw new ClusterError("INVALID_OPTION", `workers must be "auto" or an integer in [1, 1023]`);
  }
  if (options.manager !== undefined) {
    throw new ClusterError("INVALID_OPTION", "manager cannot be given with workers");
  }
  const accept = options.workerAccept ?? (Deno.build.os === "linux" ? "reuseport" : "main");
  if (accept !== "reuseport" && accept !== "main") {
    throw new ClusterError("INVALID_OPTION", `workerAccept must be "reuseport" or "main"`);
  }
  const name = thisWorker();
  if (name !== null) {
    if (joined) {
      throw new ClusterError("ALREADY_RUNNING", "a worker serves one serve({ workers }) call");
    }
    joined = true;
    return new WorkerNode<S>(options, name);
  }
  if (options.workerModule === undefined && typeof Deno.mainModule !== "string") {
    // Inside a Worker of the application's own, which has no main module to start again.
    throw new ClusterError(
      "INVALID_OPTION",
      "workerModule is needed where Deno.mainModule is not set",
    );
  }
  if (supervising) {
    throw new ClusterError("ALREADY_RUNNING", "one serve({ workers }) per program");
  }
  return new Supervisor<S>(options, count, accept, (running) => {
    supervising = running;
  });
}

export type {
  ClusterOptions,
  ClusterRole,
  ClusterServeOptions,
  ClusterServer,
  ShutdownOptions,
  WorkerAccept,
  WorkerGroup,
} from "./contract.ts";

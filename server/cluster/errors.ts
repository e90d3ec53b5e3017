/**
 * The errors of `serve({ workers })`.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * A failure of the worker group of a server.
 *
 * `code` is one of:
 * - `"INVALID_OPTION"`: `workers`, `workerAccept`... out of range, or `manager` given with
 *   `workers` (a manager belongs to one thread);
 * - `"ALREADY_RUNNING"`: a second `serve({ workers })` in one program;
 * - `"WORKER_START_FAILED"`: a worker could not start (its module threw, or it could not
 *   listen); the whole group stops;
 * - `"WORKER_START_TIMEOUT"`: a worker did not call `serve({ workers })` in time (its
 *   module must make the same call as the main thread);
 * - `"WORKER_CRASHED"`: an exception nobody caught ended a worker (it is restarted);
 * - `"WORKER_EXITED"`: a worker stopped on its own (it is restarted);
 * - `"STATS_UNAVAILABLE"`: a worker asked for the group's counters while stopping, or the
 *   main thread did not answer in time.
 *
 * @example
 * ```ts
 * import { ClusterError } from "./errors.ts";
 * const err = new ClusterError("WORKER_CRASHED", "worker 1 crashed: boom");
 * console.log(err.code); // "WORKER_CRASHED"
 * ```
 */
export class ClusterError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code One of the codes listed on the class.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "ClusterError";
  }
}

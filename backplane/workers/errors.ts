/**
 * The errors of the cross-worker backplane.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * A failure of the cross-worker backplane. Thrown for bad options; every other failure is
 * reported (the engine's `onBackplaneError`, the stats) while the backplane goes on.
 *
 * `code` is one of:
 * - `"INVALID_OPTION"`: an option out of range;
 * - `"DOORBELL_FAILED"`: the descriptor that wakes a worker could not be created;
 * - `"MESSAGE_TOO_LARGE"`: a publish larger than the transport takes, dropped;
 * - `"OVERFLOW"`: a worker read too slowly, its publisher's queue was full: a message was
 *   dropped (receivers also see the hole as a gap);
 * - `"LAGGED"`: this worker fell so far behind a publisher that it was skipped ahead; the
 *   messages it skipped are lost for its clients.
 *
 * @example
 * ```ts
 * import { WorkersBackplaneError } from "./errors.ts";
 * const err = new WorkersBackplaneError("LAGGED", "worker 2 skipped 40 messages of worker 1");
 * console.log(err.code, err instanceof Error); // "LAGGED" true
 * ```
 */
export class WorkersBackplaneError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code One of the codes listed on the class.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "WorkersBackplaneError";
  }
}

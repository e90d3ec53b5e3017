/**
 * The base class of every error this library throws on purpose.
 *
 * Each subclass carries a stable, machine-readable `code` so that callers can branch on
 * the kind of failure without parsing messages.
 *
 * @module
 */

/**
 * Base class of the library's errors. `code` is a stable string such as `"EADDRINUSE"`,
 * `"INVALID_CLOSE_CODE"` or `"HANDSHAKE_FAILED"`.
 *
 * @example Branch on the code of any library error
 * ```ts
 * import { FdwsError } from "./errors.ts";
 *
 * try {
 *   throw new FdwsError("BAD_THING", "something went wrong");
 * } catch (err) {
 *   if (err instanceof FdwsError && err.code === "BAD_THING") {
 *     console.log("handled", err.message);
 *   }
 * }
 * ```
 */
export class FdwsError extends Error {
  /** Stable machine-readable identifier of the failure. */
  readonly code: string;

  /**
   * Creates the error.
   *
   * @param code Stable machine-readable identifier.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FdwsError";
    this.code = code;
  }
}

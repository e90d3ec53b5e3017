/**
 * The errors of the Redis backplane.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * A failure of the Redis backplane. Thrown by the constructor for bad options; every
 * other failure is reported (error handler, stats) while the backplane keeps trying.
 *
 * `code` is one of:
 * - `"INVALID_URL"`: not `redis://[[user]:password@]host[:port][/db]`;
 * - `"TLS_UNSUPPORTED"`: a `rediss://` URL (TLS to Redis is not implemented);
 * - `"INVALID_OPTION"`: an option out of range;
 * - `"CONNECT_FAILED"`: the TCP connection could not be made (refused, unreachable);
 * - `"CONNECT_TIMEOUT"`: no answer to the connection and handshake in time;
 * - `"CONNECTION_LOST"`: the server closed or reset the connection;
 * - `"SERVER_LOADING"`: Redis refused a command while loading its data after a restart;
 * - `"HEALTH_TIMEOUT"`: the server stopped answering an established connection;
 * - `"AUTH_FAILED"`: AUTH, SELECT or CLIENT SETNAME was refused;
 * - `"PROTOCOL"`: the server sent something that is not RESP, or too large a reply;
 * - `"REPLY_ERROR"`: Redis refused a command (out of memory, wrong key type...);
 * - `"MESSAGE_TOO_LARGE"`: a publish over `maxMessageSize`, dropped.
 *
 * @example
 * ```ts
 * import { RedisBackplaneError } from "./errors.ts";
 * import { parseRedisUrl } from "./url.ts";
 *
 * try {
 *   parseRedisUrl("rediss://cache.internal:6380");
 * } catch (err) {
 *   if (err instanceof RedisBackplaneError) console.log(err.code); // "TLS_UNSUPPORTED"
 * }
 * ```
 */
export class RedisBackplaneError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code One of the codes listed on the class.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "RedisBackplaneError";
  }
}

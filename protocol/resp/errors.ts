/**
 * The errors of the RESP codec: malformed or over-limit input ({@link RespProtocolError}),
 * and the error replies a server sends as values ({@link RespError}).
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * The bytes are not RESP, or break a limit of the scanner. After it the stream cannot be
 * resynchronised: the connection must be closed.
 *
 * `code` is one of:
 * - `"RESP_SYNTAX"`: an unknown type byte, a malformed length or number, a missing CR LF;
 * - `"RESP_LIMIT"`: a bulk string, aggregate, line or nesting beyond the configured limit;
 * - `"RESP_UNSUPPORTED"`: a RESP3 streamed string or aggregate (`$?`, `*?`), which Redis
 *   never sends.
 *
 * @example
 * ```ts
 * import { RespProtocolError } from "./errors.ts";
 * import { RespScanner } from "./scanner.ts";
 *
 * try {
 *   new RespScanner().scan(new TextEncoder().encode("@oops\r\n"), 0, 7);
 * } catch (err) {
 *   if (err instanceof RespProtocolError) console.log(err.code); // "RESP_SYNTAX"
 * }
 * ```
 */
export class RespProtocolError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code `"RESP_SYNTAX"`, `"RESP_LIMIT"` or `"RESP_UNSUPPORTED"`.
   * @param message Human-readable description.
   */
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "RespProtocolError";
  }
}

/**
 * An error reply (`-ERR ...` or a RESP3 blob error), as a value: decoding returns it, the
 * caller decides whether to throw it. `code` is always `"REDIS_ERROR"`; `kind` is the
 * first word of the message, which Redis uses as an error class (`"ERR"`, `"WRONGTYPE"`,
 * `"NOAUTH"`, `"MOVED"`...).
 *
 * @example
 * ```ts
 * import { RespError } from "./errors.ts";
 *
 * const e = new RespError("WRONGPASS invalid username-password pair");
 * console.log(e.kind, e.code); // "WRONGPASS" "REDIS_ERROR"
 * ```
 */
export class RespError extends FdwsError {
  /** The first word of the message (`"ERR"`, `"WRONGTYPE"`, ...). */
  readonly kind: string;

  /**
   * Creates the value.
   *
   * @param message The error text as the server sent it (without `-` and CR LF).
   */
  constructor(message: string) {
    super("REDIS_ERROR", message);
    this.name = "RespError";
    const space = message.indexOf(" ");
    this.kind = space < 0 ? message : message.slice(0, space);
  }
}

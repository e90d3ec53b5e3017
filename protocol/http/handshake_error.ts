/**
 * The error of the HTTP head and handshake helpers: thrown for what the caller passes, never
 * for received bytes (parsers return those failures as results).
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/** Codes carried by {@linkcode HandshakeError}. */
export type HandshakeErrorCode =
  /** A constructor or function option is out of range. */
  | "INVALID_OPTION"
  /** A request target or Host cannot be turned into a URL. */
  | "INVALID_REQUEST_TARGET"
  /** `Request` refuses the method (CONNECT, TRACE, TRACK). */
  | "UNSUPPORTED_METHOD"
  /** A header name or value contains CR, LF or NUL. */
  | "HEADER_INJECTION"
  /** A header name is not a token, or a value contains another forbidden character. */
  | "INVALID_HEADER"
  /** A caller-supplied header would override one the library manages. */
  | "RESERVED_HEADER"
  /** A subprotocol is not a token, or is repeated. */
  | "INVALID_PROTOCOL"
  /** The chosen subprotocol was not offered by the client. */
  | "PROTOCOL_NOT_OFFERED"
  /** A `Sec-WebSocket-Key` is not base64 of 16 bytes. */
  | "INVALID_KEY"
  /** A status code cannot be used for the requested response. */
  | "INVALID_STATUS"
  /** A URL cannot be used for a WebSocket client handshake. */
  | "INVALID_URL";

/**
 * Error thrown by the HTTP head and handshake helpers when the caller passes something
 * that cannot be serialized or converted safely. Parse failures of received bytes are
 * not thrown: the parsers return them as results, because they are expected input.
 *
 * @example Detect a header injection attempt
 * ```ts
 * import { HandshakeError } from "./handshake_error.ts";
 * import { buildErrorResponse } from "../handshake/server.ts";
 *
 * try {
 *   buildErrorResponse(400, { headers: { "x-note": "a\r\nSet-Cookie: evil=1" } });
 * } catch (err) {
 *   if (err instanceof HandshakeError && err.code === "HEADER_INJECTION") {
 *     console.log("refused");
 *   }
 * }
 * ```
 */
export class HandshakeError extends FdwsError {
  /** Stable machine-readable identifier of the failure. */
  declare readonly code: HandshakeErrorCode;

  /**
   * Creates the error.
   *
   * @param code Stable machine-readable identifier.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: HandshakeErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "HandshakeError";
  }
}

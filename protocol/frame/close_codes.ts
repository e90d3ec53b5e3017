/**
 * WebSocket close status codes (RFC 6455 §7.4 and the IANA "WebSocket Close Code Number"
 * registry): named constants, the rule for codes received from a peer, and the rule for codes
 * an application may send.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * Close status codes by name.
 *
 * `NO_STATUS` (1005), `ABNORMAL` (1006) and `TLS_HANDSHAKE` (1015) are never sent on the
 * wire: they only report a local condition to the application.
 *
 * @example
 * ```ts
 * import { CloseCode } from "./close_codes.ts";
 *
 * console.log(CloseCode.MESSAGE_TOO_BIG); // 1009
 * ```
 */
export const CloseCode = {
  /** The purpose of the connection has been fulfilled. */
  NORMAL: 1000,
  /** The endpoint is going away (server shutdown, page navigation). */
  GOING_AWAY: 1001,
  /** The peer violated the protocol. */
  PROTOCOL_ERROR: 1002,
  /** The endpoint cannot accept this kind of data (e.g. binary when it only understands text). */
  UNSUPPORTED_DATA: 1003,
  /** Reserved; never sent. Reports a close frame that carried no status code. */
  NO_STATUS: 1005,
  /** Reserved; never sent. Reports a connection lost without a close frame. */
  ABNORMAL: 1006,
  /** A text message (or close reason) was not valid UTF-8. */
  INVALID_PAYLOAD: 1007,
  /** A message violated the endpoint's policy. */
  POLICY_VIOLATION: 1008,
  /** A message was too big to process. */
  MESSAGE_TOO_BIG: 1009,
  /** (Client) the server did not negotiate an extension the client requires. */
  MANDATORY_EXTENSION: 1010,
  /** (Server) an unexpected condition prevented fulfilling the request. */
  INTERNAL_ERROR: 1011,
  /** (Server) the service is restarting. */
  SERVICE_RESTART: 1012,
  /** (Server) temporary overload; try again later. */
  TRY_AGAIN_LATER: 1013,
  /** (Gateway) an upstream server returned an invalid response. */
  BAD_GATEWAY: 1014,
  /** Reserved; never sent. Reports a TLS handshake failure. */
  TLS_HANDSHAKE: 1015,
} as const;

/**
 * One of the named {@linkcode CloseCode} values.
 *
 * @example
 * ```ts
 * import { CloseCode } from "./close_codes.ts";
 *
 * const code: CloseCode = CloseCode.GOING_AWAY;
 * console.log(code); // 1001
 * ```
 */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

/**
 * The largest close reason in UTF-8 bytes: a control frame payload is at most 125 bytes and
 * the status code takes two of them.
 *
 * @example
 * ```ts
 * import { MAX_CLOSE_REASON_BYTES } from "./close_codes.ts";
 *
 * console.log(MAX_CLOSE_REASON_BYTES); // 123
 * ```
 */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Thrown when an application tries to send a close code or reason RFC 6455 forbids.
 *
 * `code` is `"INVALID_CLOSE_CODE"` (a status code that must not be sent, or a reason without a
 * code) or `"CLOSE_REASON_TOO_LONG"` (a reason over {@linkcode MAX_CLOSE_REASON_BYTES} UTF-8
 * bytes).
 *
 * @example
 * ```ts
 * import { assertSendableCloseCode, CloseCodeError } from "./close_codes.ts";
 *
 * try {
 *   assertSendableCloseCode(1006);
 * } catch (err) {
 *   if (err instanceof CloseCodeError) console.log(err.code); // "INVALID_CLOSE_CODE"
 * }
 * ```
 */
export class CloseCodeError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code `"INVALID_CLOSE_CODE"` or `"CLOSE_REASON_TOO_LONG"`.
   * @param message Human-readable description.
   */
  constructor(code: "INVALID_CLOSE_CODE" | "CLOSE_REASON_TOO_LONG", message: string) {
    super(code, message);
    this.name = "CloseCodeError";
  }
}

/**
 * Whether a status code found in a received close frame is acceptable.
 *
 * Valid: 1000–1003, 1007–1014 (defined by RFC 6455 or registered with IANA) and 3000–4999
 * (libraries/frameworks and private use). Everything else — 0–999, the reserved 1004, the
 * never-on-the-wire 1005, 1006 and 1015, the unassigned 1016–2999 and anything ≥ 5000 — means
 * the peer violated the protocol and the connection must fail with 1002.
 *
 * @param code The 16-bit status code read from the close payload.
 * @returns `true` if the code may appear on the wire.
 *
 * @example
 * ```ts
 * import { isValidReceivedCloseCode } from "./close_codes.ts";
 *
 * console.log(isValidReceivedCloseCode(1000)); // true
 * console.log(isValidReceivedCloseCode(1005)); // false
 * console.log(isValidReceivedCloseCode(4000)); // true
 * ```
 */
export function isValidReceivedCloseCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
      (code >= 3000 && code <= 4999));
}

/**
 * Whether an application may put `code` in a close frame it sends: 1000–1003, 1007–1014 and
 * 3000–4999 — the same set a receiver accepts, so whatever we send the peer will accept.
 *
 * @param code Candidate status code.
 * @returns `true` if the code may be sent.
 *
 * @example
 * ```ts
 * import { isSendableCloseCode } from "./close_codes.ts";
 *
 * console.log(isSendableCloseCode(1001)); // true
 * console.log(isSendableCloseCode(1015)); // false
 * ```
 */
export function isSendableCloseCode(code: number): boolean {
  return isValidReceivedCloseCode(code);
}

/**
 * Throws unless `code` may be sent in a close frame (see {@linkcode isSendableCloseCode}).
 *
 * @param code Candidate status code.
 * @throws {CloseCodeError} with code `"INVALID_CLOSE_CODE"`.
 *
 * @example
 * ```ts
 * import { assertSendableCloseCode } from "./close_codes.ts";
 *
 * assertSendableCloseCode(4000); // fine
 * try {
 *   assertSendableCloseCode(999);
 * } catch (err) {
 *   console.log((err as Error).message);
 * }
 * ```
 */
export function assertSendableCloseCode(code: number): void {
  if (!isSendableCloseCode(code)) {
    throw new CloseCodeError(
      "INVALID_CLOSE_CODE",
      `close code ${code} may not be sent (allowed: 1000-1003, 1007-1014, 3000-4999)`,
    );
  }
}

/**
 * A connection's permessage-deflate decompression as the frame parser sees it: the
 * `MessageInflater` seam of the parser, over the connection's `DeflateSession`.
 *
 * @module
 */

import type { MessageInflater } from "../protocol/frame/parser.ts";
import type { DeflateSession } from "./session.ts";

const EMPTY = new Uint8Array(0);
const MESSAGE_TOO_BIG = 1009;
const INVALID_PAYLOAD = 1007;

/**
 * Feeds the payload of compressed messages to a session, as they arrive; the session's
 * limit (the manager's `maxMessageSize`) is enforced while inflating, so a decompression
 * bomb is refused without ever holding the inflated whole.
 *
 * @example
 * ```ts
 * import { DeflateContext } from "./context.ts";
 * import { SessionInflater } from "./inflater.ts";
 * import { DeflateSession } from "./session.ts";
 *
 * const context = new DeflateContext();
 * const session = new DeflateSession("server", {
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: true,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * }, context);
 * const inflater = new SessionInflater(session);
 * const hello = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
 * inflater.push(hello, 0, hello.length);
 * console.log(new TextDecoder().decode(inflater.finish()!)); // "Hello"
 * session.free();
 * context.free();
 * ```
 */
export class SessionInflater implements MessageInflater {
  /**
   * Bytes inflated so far for the message in progress: what the parser holds against the
   * manager's budget of bytes in incomplete messages.
   */
  get size(): number {
    return this.#session.inflatedSoFar;
  }
  /** 1009 (too big), 1007 (invalid data) or 0. */
  error = 0;
  readonly #session: DeflateSession;

  /** @param session The connection's session. */
  constructor(session: DeflateSession) {
    this.#session = session;
  }

  /** Inflates payload bytes of the message in progress. */
  push(buf: Uint8Array, start: number, end: number): boolean {
    const r = this.#session.inflate(buf, start, end, false);
    if (r === "more" || r === "done") return true;
    this.error = r === "too-big" ? MESSAGE_TOO_BIG : INVALID_PAYLOAD;
    return false;
  }

  /** Ends the message: its inflated bytes (valid until the next inflate), or null. */
  finish(): Uint8Array | null {
    const session = this.#session;
    const r = session.inflate(EMPTY, 0, 0, true);
    if (r !== "done") {
      this.error = r === "too-big" ? MESSAGE_TOO_BIG : INVALID_PAYLOAD;
      return null;
    }
    this.error = 0;
    return session.message.subarray(0, session.messageLength);
  }

  /** A message dropped half way: the session is freed with its connection. */
  reset(): void {}
}

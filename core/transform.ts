/**
 * The message transform seam on the send side: how a connection's outgoing messages are
 * compressed when permessage-deflate was negotiated (the receive side is the frame
 * parser's `MessageInflater`). Without one (the default) messages go out as they are.
 *
 * @module
 */

/**
 * Compression of one connection's messages, RFC 7692.
 *
 * @example The shape
 * ```ts
 * import type { MessageDeflater } from "./transform.ts";
 *
 * const identity: MessageDeflater = {
 *   output: new Uint8Array(0),
 *   sharedWindowBits: -1,
 *   compress: () => -1, // always: send uncompressed
 *   resetCompression() {},
 *   free() {},
 * };
 * console.log(identity.compress(new Uint8Array(3), 0, 3)); // -1
 * ```
 */
export interface MessageDeflater {
  /** Where {@link MessageDeflater.compress} wrote (valid until the next compress). */
  readonly output: Uint8Array;
  /**
   * Connections with the same value >= 0 compress a message to the same bytes (no context
   * takeover, same window): a broadcast compresses once per value. -1: this connection
   * compresses with a context of its own.
   */
  readonly sharedWindowBits: number;
  /**
   * Compresses `data[start..end)`: the payload's length in `output`, or -1 to send the
   * message uncompressed (short, or not smaller).
   */
  compress(data: Uint8Array, start: number, end: number): number;
  /**
   * A compressed message was not sent after all (the backpressure policy dropped it): the
   * compressor forgets its window so that the peer's stays a superset of it.
   */
  resetCompression(): void;
  /** Releases the connection's compression state; called once, when it closes. */
  free(): void;
}

/**
 * permessage-deflate for one connection: the agreed parameters turned into a compressor
 * for our messages and a decompressor for the peer's, each either the manager's shared one
 * (that direction has no context takeover) or the connection's own, created on first use.
 *
 * Memory per connection: with no context takeover in both directions (the `"shared"`
 * modes) a session holds no zlib state at all; otherwise a dedicated stream per direction
 * with context takeover, allocated by the first message that needs it. Measured in
 * docs/permessage-deflate.md.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import type { DeflateParameters } from "../protocol/deflate/params.ts";
import { Compressor, compressorOutput } from "./compressor.ts";
import type { DeflateContext } from "./context.ts";
import { SEND_UNCOMPRESSED } from "./context.ts";
import { Decompressor, type InflateResult } from "./decompressor.ts";

/**
 * The transform of one connection's messages.
 *
 * On receive, for a data message whose first frame has RSV1 set: call
 * {@linkcode DeflateSession.inflate} with each frame's payload (unmasked), `fin` on the
 * last; on `"done"` read {@linkcode DeflateSession.message} up to
 * {@linkcode DeflateSession.messageLength} (copy or decode it before the next inflate of
 * any connection); `"too-big"` → close 1009, `"invalid"` → close 1007.
 *
 * On send: {@linkcode DeflateSession.compress} returns the payload length in
 * {@linkcode DeflateSession.output} (frame it with RSV1 on the first frame), or
 * `SEND_UNCOMPRESSED` (frame the original, RSV1 clear).
 *
 * @example A server session, both directions shared
 * ```ts
 * import { DeflateContext } from "./context.ts";
 * import { DeflateSession } from "./session.ts";
 *
 * const context = new DeflateContext();
 * const session = new DeflateSession("server", {
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: true,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * }, context);
 * const payload = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
 * console.log(session.inflate(payload, 0, payload.length, true)); // "done"
 * console.log(new TextDecoder().decode(session.message.subarray(0, session.messageLength))); // "Hello"
 * session.free();
 * context.free();
 * ```
 */
export class DeflateSession {
  /** The agreed parameters. */
  readonly params: DeflateParameters;
  /**
   * The window of our messages when they are compressed by the context's shared
   * compressor (no context takeover for our side), else -1. Connections with the same
   * value can be sent one compressed broadcast: `context.compress(data, s, e, bits)`.
   */
  readonly sharedWindowBits: number;
  readonly #context: DeflateContext;
  readonly #ownBits: number;
  readonly #peerBits: number;
  readonly #peerShared: boolean;
  #compressor: Compressor | null = null;
  #decompressor: Decompressor | null = null;
  // The shared decompressor lent for the message in progress, and the one that produced
  // the last message (its output getters stay readable after it went back).
  #borrowed: Decompressor | null = null;
  #last: Decompressor | null = null;
  #freed = false;

  /**
   * Creates the session of a connection whose handshake agreed `params`.
   *
   * @param role Which end this connection is: the server compresses with the server's
   * parameters and inflates with the client's; a client the other way round.
   * @param params What the negotiation agreed.
   * @param context The manager's shared state and options.
   */
  constructor(role: "server" | "client", params: DeflateParameters, context: DeflateContext) {
    const server = role === "server";
    this.params = params;
    this.#context = context;
    this.#ownBits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    this.#peerBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    const ownShared = server ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.#peerShared = server ? params.clientNoContextTakeover : params.serverNoContextTakeover;
    this.sharedWindowBits = ownShared ? (this.#ownBits === 8 ? 9 : this.#ownBits) : -1;
  }

  /** The output buffer of compression (shared by every compressor of the isolate). */
  get output(): Uint8Array {
    return compressorOutput();
  }

  /**
   * Compresses one message of ours, `data[start..end)`.
   *
   * @param data Message bytes (text already UTF-8 encoded).
   * @param start First index (default 0).
   * @param end End index, exclusive (default `data.length`).
   * @returns The payload length in {@linkcode DeflateSession.output}, or
   * `SEND_UNCOMPRESSED` (shorter than the threshold, or, without context takeover, no
   * smaller compressed).
   */
  compress(data: Uint8Array, start = 0, end: number = data.length): number {
    this.#live();
    if (this.sharedWindowBits !== -1) {
      return this.#context.compress(data, start, end, this.sharedWindowBits);
    }
    if (end - start < this.#context.threshold) return SEND_UNCOMPRESSED;
    let c = this.#compressor;
    if (c === null) {
      c = this.#compressor = new Compressor({
        windowBits: this.#ownBits,
        memLevel: this.#context.memLevel,
        level: this.#context.level,
      });
    }
    // With context takeover the peer's window now holds this message: it must be sent
    // compressed even if it did not shrink.
    return c.compress(data, start, end);
  }

  /**
   * For a connection with its own compressor (context takeover) that was sent a message
   * compressed by the shared one (a broadcast): forgets our window, since the peer's now
   * holds bytes our compressor never saw. No effect on a shared session.
   */
  resetCompression(): void {
    this.#compressor?.reset();
  }

  /**
   * Inflates the next fragment of a compressed message from the peer.
   *
   * @param data The frame payload, unmasked.
   * @param start First index.
   * @param end End index (exclusive).
   * @param fin Whether this frame ends the message.
   * @returns See `InflateResult`: `"more"`, `"done"`, `"too-big"` (1009), `"invalid"`
   * (1007).
   */
  inflate(data: Uint8Array, start: number, end: number, fin: boolean): InflateResult {
    this.#live();
    let d: Decompressor;
    if (this.#peerShared) {
      d = this.#borrowed ?? this.#context.borrow();
      this.#borrowed = d;
    } else {
      d = this.#decompressor ??= new Decompressor({
        windowBits: this.#peerBits,
        maxMessageSize: this.#context.maxMessageSize,
      });
    }
    const result = d.push(data, start, end, fin);
    if (result !== "more") {
      this.#last = d;
      if (this.#borrowed !== null) {
        this.#borrowed = null;
        this.#context.release(d);
      }
    }
    return result;
  }

  /**
   * After `"done"`: the buffer holding the message in its first
   * {@linkcode DeflateSession.messageLength} bytes, valid until the next inflate of any
   * connection.
   */
  get message(): Uint8Array {
    return this.#last?.output ?? new Uint8Array(0);
  }

  /** After `"done"`: the inflated message's length. */
  get messageLength(): number {
    return this.#last?.outputLength ?? 0;
  }

  /** Bytes inflated so far for the compressed message in progress (0 between messages). */
  get inflatedSoFar(): number {
    const d = this.#borrowed ?? this.#decompressor;
    return d !== null && d.inMessage ? d.bytesInflated : 0;
  }

  /** Whether a compressed message is partly received. */
  get inMessage(): boolean {
    return this.#borrowed !== null || (this.#decompressor?.inMessage ?? false);
  }

  /**
   * Whether this session holds zlib state of its own (dedicated streams that compressed or
   * inflated at least one message).
   */
  get allocated(): boolean {
    return (this.#compressor?.allocated ?? false) || (this.#decompressor?.allocated ?? false);
  }

  /** `true` after {@linkcode DeflateSession.free}. */
  get freed(): boolean {
    return this.#freed;
  }

  #live(): void {
    if (this.#freed) {
      throw new FdwsError("ZLIB_STREAM_ENDED", "fdws: deflate session used after free()");
    }
  }

  /**
   * Releases the connection's streams and gives back a lent decompressor (dropping a
   * message in progress). Call it on every path that ends the connection. Idempotent.
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#compressor?.free();
    this.#compressor = null;
    this.#decompressor?.free();
    this.#decompressor = null;
    if (this.#borrowed !== null) {
      this.#context.release(this.#borrowed);
      this.#borrowed = null;
    }
    this.#last = null;
  }
}

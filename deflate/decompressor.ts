/**
 * The receiving half of permessage-deflate (RFC 7692 §7.2.2): inflates a message fed one
 * fragment at a time, appending the `00 00 ff ff` tail after the last one, and refuses a
 * message whose inflated size would pass the caller's limit while it inflates, so that a
 * decompression bomb never occupies more than the limit (plus one byte).
 *
 * Memory:
 * - The zlib stream is created on the first compressed message.
 * - Output of a message that completes within one `push` (the usual case) goes to a buffer
 *   shared by every decompressor of the isolate; only a message still incomplete when a
 *   `push` returns moves its bytes into a buffer of its own, dropped when the message ends.
 *   An idle connection therefore holds no output buffer.
 * - Buffers grow by doubling, capped at limit + 1 bytes: reaching limit + 1 bytes is how an
 *   oversized message is detected.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { Z_BUF_ERROR, Z_OK, Z_STREAM_END, Z_SYNC_FLUSH } from "../ffi/zlib.ts";
import { addressOf, ZStream } from "./z_stream.ts";

/**
 * What {@linkcode Decompressor.push} found:
 * - `"more"`: the fragment was consumed; the message needs its next fragment.
 * - `"done"`: the message is complete, in {@linkcode Decompressor.output}.
 * - `"too-big"`: the message would exceed the limit: fail the connection with 1009.
 * - `"invalid"`: the data is not valid DEFLATE: fail the connection with 1007.
 *
 * After `"too-big"` and `"invalid"` the stream was reset; the connection is expected to
 * close, but the decompressor itself stays usable (a shared one serves others).
 */
export type InflateResult = "more" | "done" | "too-big" | "invalid";

/**
 * Options of a {@linkcode Decompressor}.
 *
 * @example
 * ```ts
 * import type { DecompressorOptions } from "./decompressor.ts";
 *
 * const options: DecompressorOptions = { windowBits: 15, maxMessageSize: 1 << 20 };
 * console.log(options.maxMessageSize); // 1048576
 * ```
 */
export interface DecompressorOptions {
  /**
   * Base-2 logarithm of the largest window the peer may use, 8..15: the `*_max_window_bits`
   * agreed for the peer's messages. Defaults to 15.
   */
  windowBits?: number;
  /**
   * Largest inflated message in bytes; more is refused as `"too-big"`. A non-negative
   * integer or `Infinity` (then bounded only by the largest buffer the engine can allocate).
   * Defaults to 64 MiB.
   */
  maxMessageSize?: number;
  /**
   * Start every message from an empty window (`*_no_context_takeover` agreed for the peer's
   * messages). Defaults to `false`.
   */
  noContextTakeover?: boolean;
}

/** Default {@linkcode DecompressorOptions.maxMessageSize}: 64 MiB, as the frame parser. */
export const DEFAULT_MAX_INFLATED_SIZE = 64 * 1024 * 1024;

/**
 * The 4 octets RFC 7692 §7.2.2 appends to a message's payload before inflating it, in an
 * `ArrayBuffer` of their own so that their address never changes.
 */
const TAIL = (() => {
  const b = new Uint8Array(new ArrayBuffer(4));
  b.set([0x00, 0x00, 0xff, 0xff]);
  return b;
})();
let tailAddress = 0;

// What #drain reports.
const DRAINED = 0;
const TOO_BIG = 1;
const INVALID = 2;

const INITIAL_OUTPUT = 16 * 1024;
/** A shared buffer grown beyond this is replaced by a small one at the next message. */
const RETAINED_OUTPUT = 1024 * 1024;
/** Largest buffer we try to allocate when the limit is `Infinity`. */
const MAX_BUFFER = 2 ** 32 - 1;
/** zlib's avail_in/avail_out are 32-bit: feed and drain in slices of at most this. */
const MAX_SLICE = 1 << 30;

// The output buffer shared by every decompressor, and its address.
let shared: Uint8Array<ArrayBuffer> = new Uint8Array(0);
let sharedAddress = 0;

// Room for the window when a stream restarts after a final block (32 KiB at most).
let windowScratch: Uint8Array | null = null;

/**
 * Inflates the compressed messages of one peer (with context takeover), or of many when
 * the peers agreed to no context takeover and each message is inflated in one go.
 *
 * @example Inflate the RFC 7692 §7.2.3.1 "Hello", split in two fragments
 * ```ts
 * import { Decompressor } from "./decompressor.ts";
 *
 * const d = new Decompressor({ maxMessageSize: 1024 });
 * console.log(d.push(new Uint8Array([0xf2, 0x48, 0xcd]), 0, 3, false)); // "more"
 * console.log(d.push(new Uint8Array([0xc9, 0xc9, 0x07, 0x00]), 0, 4, true)); // "done"
 * console.log(new TextDecoder().decode(d.output.subarray(0, d.outputLength))); // "Hello"
 * d.free();
 * ```
 */
export class Decompressor {
  /** Largest window the peer may use. */
  readonly windowBits: number;
  /** Largest inflated message accepted. */
  readonly maxMessageSize: number;
  /** Whether every message starts from an empty window. */
  readonly noContextTakeover: boolean;
  #stream: ZStream | null = null;
  #freed = false;
  // The message in progress: whether one is, whether its stream ended (final block) within
  // it, whether zlib last stopped at a block boundary, whether it had no payload yet, and
  // its bytes when they had to outlive a push (its own buffer).
  #inMessage = false;
  #sawEnd = false;
  #boundary = true;
  #empty = true;
  #own: Uint8Array<ArrayBuffer> | null = null;
  #ownAddress = 0;
  #written = 0;
  // Where the last push wrote (shared or own) and how much: the result of "done".
  #output: Uint8Array = shared;
  #outputLength = 0;

  /**
   * Creates a decompressor. No zlib memory is allocated until the first message.
   *
   * @param options Window, size limit and context takeover.
   * @throws {FdwsError} `INVALID_OPTIONS` for a value out of range.
   */
  constructor(options: DecompressorOptions = {}) {
    const bits = options.windowBits ?? 15;
    if (!Number.isInteger(bits) || bits < 8 || bits > 15) {
      throw new FdwsError("INVALID_OPTIONS", "fdws: windowBits must be an integer 8..15");
    }
    const limit = options.maxMessageSize ?? DEFAULT_MAX_INFLATED_SIZE;
    if (limit !== Infinity && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new FdwsError(
        "INVALID_OPTIONS",
        "fdws: maxMessageSize must be a non-negative integer or Infinity",
      );
    }
    this.windowBits = bits;
    this.maxMessageSize = limit;
    this.noContextTakeover = options.noContextTakeover ?? false;
  }

  /**
   * After `"done"`: the buffer whose first {@linkcode Decompressor.outputLength} bytes are
   * the message. Valid until the next `push` of any decompressor: copy or decode it first.
   */
  get output(): Uint8Array {
    return this.#output;
  }

  /** After `"done"`: the length of the inflated message. */
  get outputLength(): number {
    return this.#outputLength;
  }

  /** Whether a message is partly inflated (its last fragment has not come). */
  get inMessage(): boolean {
    return this.#inMessage;
  }

  /** Bytes inflated so far for the message in progress. */
  get bytesInflated(): number {
    return this.#written;
  }

  /** Whether a zlib stream is allocated (after the first message, until `free`). */
  get allocated(): boolean {
    return this.#stream !== null;
  }

  /** `true` after {@linkcode Decompressor.free}. */
  get freed(): boolean {
    return this.#freed;
  }

  /**
   * Inflates the next fragment of the current message, `data[start..end)`; `fin` marks the
   * message's last fragment. Fragments may be any size, down to single bytes or none.
   *
   * @param data Compressed bytes (the frame payload, already unmasked).
   * @param start First index.
   * @param end End index (exclusive).
   * @param fin Whether this is the message's last fragment.
   * @returns What happened; see {@linkcode InflateResult}.
   * @throws {FdwsError} `ZLIB_STREAM_ENDED` after `free`; `ZLIB_INIT_FAILED` if zlib cannot
   * allocate the stream.
   */
  push(data: Uint8Array, start: number, end: number, fin: boolean): InflateResult {
    if (this.#freed) {
      throw new FdwsError("ZLIB_STREAM_ENDED", "fdws: decompressor used after free()");
    }
    if (!this.#inMessage) {
      this.#inMessage = true;
      this.#sawEnd = false;
      this.#boundary = true;
      this.#empty = true;
      this.#written = 0;
      // Nobody holds the shared buffer between pushes: shrink it if a big message grew it.
      if (shared.length === 0 || shared.length > RETAINED_OUTPUT) replaceShared(INITIAL_OUTPUT);
    }
    if (end > start) this.#empty = false;
    if (fin && this.#empty) {
      // No payload at all: no compressor produces that (an empty message is `00`), but it
      // can only mean an empty message. Feeding the tail alone to zlib would leave the
      // stream inside a stored block header and break the next message.
      this.#output = shared;
      this.#outputLength = 0;
      this.#endMessage();
      return "done";
    }
    let stream = this.#stream;
    if (stream === null) stream = this.#stream = ZStream.inflate(this.windowBits);
    let drained: number;
    if (fin && stream.setStagedInput(data, start, end, TAIL)) {
      drained = this.#drain(stream);
    } else {
      drained = DRAINED;
      for (let p = start; p < end && drained === DRAINED; p += MAX_SLICE) {
        stream.setInput(data, p, Math.min(end, p + MAX_SLICE));
        drained = this.#drain(stream);
      }
      if (fin && drained === DRAINED) {
        if (tailAddress === 0) tailAddress = addressOf(TAIL);
        stream.setInputAddress(tailAddress, 4);
        drained = this.#drain(stream);
      }
    }
    if (drained !== DRAINED) {
      this.#abandon(stream);
      return drained === TOO_BIG ? "too-big" : "invalid";
    }
    if (!fin) {
      this.#keepPartial();
      return "more";
    }
    // With its tail, a message ends at a block boundary (RFC 7692 §7.2.1 ends it with an
    // empty stored block). Stopping anywhere else means a truncated or corrupt payload,
    // which would also derail the next message; except after a final block without the
    // empty block the RFC adds in §7.2.3.4: start the next message cleanly, keeping the
    // window.
    if (!this.#boundary) {
      if (!this.#sawEnd) {
        this.#abandon(stream);
        return "invalid";
      }
      stream.restartKeepingWindow(scratch());
    }
    if (this.noContextTakeover) stream.reset();
    this.#output = this.#own ?? shared;
    this.#outputLength = this.#written;
    this.#endMessage();
    return "done";
  }

  /** Inflates all the stream's input: DRAINED, TOO_BIG or INVALID. */
  #drain(stream: ZStream): number {
    const limit = this.maxMessageSize;
    for (;;) {
      let buf = this.#own ?? shared;
      if (this.#written === buf.length) {
        buf = this.#grow();
        if (buf.length === this.#written) return TOO_BIG;
      }
      // Never let zlib write more than limit + 1 bytes in all: one byte past the limit
      // is enough to know the message is too big.
      const room = Math.min(buf.length - this.#written, limit + 1 - this.#written, MAX_SLICE);
      const base = this.#own !== null ? this.#ownAddress : sharedAddress;
      stream.setOutputAddress(base + this.#written, room);
      const rc = stream.inflate(Z_SYNC_FLUSH);
      const left = stream.availOut;
      this.#written += room - left;
      // Only a call that made progress says where the stream stopped: a call without
      // (Z_BUF_ERROR) reports a boundary as "mid-block".
      if (rc === Z_OK) this.#boundary = (stream.dataType & 128) !== 0;
      if (this.#written > limit) return TOO_BIG;
      if (rc === Z_STREAM_END) {
        // A block marked final (RFC 7692 §7.2.3.4): later blocks of this message, and
        // later messages with context takeover, may still refer to the window.
        this.#sawEnd = true;
        this.#boundary = false;
        stream.restartKeepingWindow(scratch());
        if (stream.availIn === 0) return DRAINED;
        continue;
      }
      if (rc !== Z_OK && rc !== Z_BUF_ERROR) return INVALID;
      if (left !== 0) {
        // Room to spare: everything this input yields is out.
        if (stream.availIn === 0) return DRAINED;
        // Z_BUF_ERROR with input and room left: zlib can make no progress at all.
        if (rc === Z_BUF_ERROR) return INVALID;
      }
    }
  }

  /** Doubles the buffer in use (capped at limit + 1), keeping what was written. */
  #grow(): Uint8Array<ArrayBuffer> {
    const current = this.#own ?? shared;
    const cap = Math.min(this.maxMessageSize + 1, MAX_BUFFER);
    const size = Math.min(Math.max(current.length * 2, INITIAL_OUTPUT), cap);
    if (size <= current.length) return current;
    const next = new Uint8Array(new ArrayBuffer(size));
    next.set(current.subarray(0, this.#written));
    if (this.#own !== null) {
      this.#own = next;
      this.#ownAddress = addressOf(next);
    } else {
      shared = next;
      sharedAddress = addressOf(next);
    }
    // Nothing else holds the outgrown buffer: free it now rather than at a collection, or
    // a few bombs inflating at once pile up every doubling step until V8 collects.
    current.buffer.transfer(0);
    return next;
  }

  /** The message continues in a later push: its bytes must leave the shared buffer. */
  #keepPartial(): void {
    if (this.#own !== null || this.#written === 0) return;
    const own = new Uint8Array(new ArrayBuffer(Math.max(this.#written * 2, INITIAL_OUTPUT)));
    own.set(shared.subarray(0, this.#written));
    this.#own = own;
    this.#ownAddress = addressOf(own);
  }

  #endMessage(): void {
    this.#inMessage = false;
    this.#own = null;
    this.#ownAddress = 0;
    this.#written = 0;
  }

  #abandon(stream: ZStream): void {
    stream.reset();
    // A message refused as too big (a bomb) grew the buffer to the limit: give it back now.
    if (this.#own !== null) this.#own.buffer.transfer(0);
    else if (shared.length > RETAINED_OUTPUT) replaceShared(INITIAL_OUTPUT);
    this.#endMessage();
    this.#output = shared;
    this.#outputLength = 0;
  }

  /**
   * Drops the message in progress, if any (the connection is closing mid-message), and
   * resets the stream so that the decompressor may serve another message.
   */
  abort(): void {
    if (this.#freed || !this.#inMessage) return;
    if (this.#stream !== null) this.#abandon(this.#stream);
    else this.#endMessage();
  }

  /**
   * Releases the zlib stream and drops a message in progress. Idempotent. The result of
   * the last `"done"` stays readable (a shared decompressor may be freed right after it
   * produced a message).
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#stream?.end();
    this.#stream = null;
    this.#endMessage();
  }
}

/** Replaces the shared output buffer by a fresh one of `size` bytes, freeing the old one. */
function replaceShared(size: number): void {
  const old = shared;
  shared = new Uint8Array(new ArrayBuffer(size));
  sharedAddress = addressOf(shared);
  old.buffer.transfer(0);
}

function scratch(): Uint8Array {
  if (windowScratch === null) windowScratch = new Uint8Array(new ArrayBuffer(1 << 15));
  return windowScratch;
}

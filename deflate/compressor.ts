/**
 * The sending half of permessage-deflate (RFC 7692 §7.2.1): compresses one whole message
 * with raw DEFLATE, ends it with a sync flush and strips the 4-byte `00 00 ff ff` tail.
 *
 * Memory: the zlib stream is created on the first message, so a connection that never
 * compresses (every message under the size threshold, or opted out) costs nothing. Output
 * goes to one buffer shared by every compressor of the isolate, valid until the next
 * `compress` call of any compressor: the caller copies it into its frame right away.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { Z_BUF_ERROR, Z_DEFAULT_COMPRESSION, Z_OK, Z_SYNC_FLUSH } from "../ffi/zlib.ts";
import { addressOf, ZStream } from "./z_stream.ts";

/**
 * Options of a {@linkcode Compressor}.
 *
 * @example
 * ```ts
 * import type { CompressorOptions } from "./compressor.ts";
 *
 * const options: CompressorOptions = { windowBits: 12, memLevel: 5, noContextTakeover: false };
 * console.log(options.windowBits); // 12
 * ```
 */
export interface CompressorOptions {
  /**
   * Base-2 logarithm of the LZ77 window, 8..15: the `*_max_window_bits` the peer agreed to
   * for our messages. Defaults to 15. zlib refuses 8 for raw deflate and runs 9 instead,
   * which the peer's 256-byte window still decodes: zlib never emits a distance beyond
   * `window - 262` bytes, 250 with windowBits 9.
   */
  windowBits?: number;
  /**
   * zlib memLevel, 1..9 (hash table and pending buffer; zlib's default is 8). Memory is about
   * 2^(windowBits + 2) + 2^(memLevel + 9) bytes.
   */
  memLevel?: number;
  /** Compression level, 0..9, or -1 for zlib's default (6). */
  level?: number;
  /**
   * Start every message from an empty window (`*_no_context_takeover` agreed for our
   * messages). Defaults to `false`.
   */
  noContextTakeover?: boolean;
}

/** Size of the shared output buffer when first allocated. */
const INITIAL_OUTPUT = 16 * 1024;
/** A shared output buffer grown beyond this is replaced by a small one at the next call. */
const RETAINED_OUTPUT = 1024 * 1024;

let output: Uint8Array = new Uint8Array(0);
let outputAddress = 0;

function allocateOutput(size: number, keep: number): void {
  const next = new Uint8Array(new ArrayBuffer(size));
  if (keep > 0) next.set(output.subarray(0, keep));
  output = next;
  outputAddress = addressOf(next);
}

/**
 * The output buffer every compressor writes to: after a `compress` call returned `n`, the
 * payload is its first `n` bytes, until the next `compress` of any compressor. Read it
 * after the call (the call may replace the buffer).
 *
 * @example
 * ```ts
 * import { Compressor, compressorOutput } from "./compressor.ts";
 *
 * const c = new Compressor();
 * const n = c.compress(new TextEncoder().encode("Hello"));
 * console.log(compressorOutput() === c.output, n); // true 7
 * c.free();
 * ```
 *
 * @returns The shared buffer.
 */
export function compressorOutput(): Uint8Array {
  return output;
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FdwsError("INVALID_OPTIONS", `fdws: ${name} must be an integer ${min}..${max}`);
  }
  return value;
}

/**
 * Compresses messages for one peer (dedicated, with context takeover) or for many (no
 * context takeover: one compressor can serve every connection that agreed to the same
 * window).
 *
 * @example Compress "Hello" as RFC 7692 §7.2.3.1 shows
 * ```ts
 * import { Compressor } from "./compressor.ts";
 *
 * const compressor = new Compressor({ noContextTakeover: true });
 * const length = compressor.compress(new TextEncoder().encode("Hello"));
 * const hex = Array.from(compressor.output.subarray(0, length), (b) => b.toString(16));
 * console.log(hex.join(" ")); // "f2 48 cd c9 c9 7 0"
 * compressor.free();
 * ```
 */
export class Compressor {
  /** The window agreed with the peer, 8..15 (zlib runs 9 for 8). */
  readonly windowBits: number;
  /** zlib memLevel. */
  readonly memLevel: number;
  /** Compression level. */
  readonly level: number;
  /** Whether every message starts from an empty window. */
  readonly noContextTakeover: boolean;
  #stream: ZStream | null = null;
  #freed = false;

  /**
   * Creates a compressor. No zlib memory is allocated until the first message.
   *
   * @param options Window, memory level, level and context takeover.
   * @throws {FdwsError} `INVALID_OPTIONS` for a value out of range.
   */
  constructor(options: CompressorOptions = {}) {
    this.windowBits = checkInteger("windowBits", options.windowBits ?? 15, 8, 15);
    this.memLevel = checkInteger("memLevel", options.memLevel ?? 8, 1, 9);
    this.level = checkInteger("level", options.level ?? Z_DEFAULT_COMPRESSION, -1, 9);
    this.noContextTakeover = options.noContextTakeover ?? false;
  }

  /**
   * The shared output buffer: the last result is its first `n` bytes, `n` being what
   * `compress` returned. Overwritten by the next `compress` of any compressor, and maybe
   * replaced by it: read it after the call (`c.output.slice(0, c.compress(m))` reads the
   * old buffer).
   */
  get output(): Uint8Array {
    return output;
  }

  /** Whether a zlib stream is allocated (after the first non-empty message, until `free`). */
  get allocated(): boolean {
    return this.#stream !== null;
  }

  /** `true` after {@linkcode Compressor.free}. */
  get freed(): boolean {
    return this.#freed;
  }

  /**
   * Compresses `data[start..end)` as one message: the payload to send with RSV1 set.
   *
   * An empty message becomes the single byte `00` (an empty stored block, RFC 7692 §7.2.3.6)
   * without involving zlib: after a sync flush the stream is byte-aligned, so the extra block
   * changes nothing for either side.
   *
   * @param data Message bytes.
   * @param start First index (default 0).
   * @param end End index, exclusive (default `data.length`).
   * @returns The number of compressed bytes at the start of {@linkcode Compressor.output}.
   * @throws {FdwsError} `ZLIB_STREAM_ENDED` after `free`; `ZLIB_INIT_FAILED` if zlib cannot
   * allocate the stream; `ZLIB_DEFLATE_FAILED` if zlib reports an inconsistent stream.
   */
  compress(data: Uint8Array, start = 0, end: number = data.length): number {
    if (this.#freed) {
      throw new FdwsError("ZLIB_STREAM_ENDED", "fdws: compressor used after free()");
    }
    if (output.length === 0 || output.length > RETAINED_OUTPUT) allocateOutput(INITIAL_OUTPUT, 0);
    if (end === start) {
      output[0] = 0;
      return 1;
    }
    let stream = this.#stream;
    if (stream === null) {
      // zlib refuses windowBits 8 for raw deflate; see CompressorOptions.windowBits.
      const bits = this.windowBits === 8 ? 9 : this.windowBits;
      stream = this.#stream = ZStream.deflate(this.level, bits, this.memLevel);
    }
    stream.setInput(data, start, end);
    let written = 0;
    for (;;) {
      const room = output.length - written;
      stream.setOutputAddress(outputAddress + written, room);
      const rc = stream.deflate(Z_SYNC_FLUSH);
      if (rc !== Z_OK && rc !== Z_BUF_ERROR) {
        throw new FdwsError("ZLIB_DEFLATE_FAILED", `fdws: deflate failed with ${rc}`);
      }
      const left = stream.availOut;
      written += room - left;
      // zlib returns with room to spare only once all input is consumed and flushed.
      if (left !== 0) break;
      allocateOutput(output.length * 2, written);
    }
    if (
      written < 4 || output[written - 4] !== 0x00 || output[written - 3] !== 0x00 ||
      output[written - 2] !== 0xff || output[written - 1] !== 0xff
    ) {
      throw new FdwsError("ZLIB_DEFLATE_FAILED", "fdws: sync flush did not end with 00 00 ff ff");
    }
    if (this.noContextTakeover) stream.reset();
    return written - 4;
  }

  /**
   * Forgets the sliding window: the next message refers to nothing sent before it. A
   * connection with context takeover that was sent a message compressed by another
   * compressor (a shared broadcast) must call this before its own next message, since the
   * peer's window then holds bytes this compressor never saw.
   */
  reset(): void {
    if (this.#freed) return;
    this.#stream?.reset();
  }

  /** Releases the zlib stream. Idempotent; the compressor cannot be used afterwards. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#stream?.end();
    this.#stream = null;
  }
}

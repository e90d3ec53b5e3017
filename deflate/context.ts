/**
 * The permessage-deflate state one manager shares between its connections: a compressor
 * per window size for every connection whose messages are compressed without context
 * takeover (and for broadcasts, compressed once), and a few decompressors lent to
 * connections whose peer compresses without context takeover.
 *
 * Why sharing is safe: without context takeover a message refers to nothing before it, so
 * a compressor reset after each message produces the same bytes whichever connection it
 * serves; a decompressor is reset after each message the same way. A decompressor is lent
 * for one message at a time; a message still incomplete when its push returns keeps its
 * decompressor until its last fragment, so concurrent fragmented messages borrow one each.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { Compressor, compressorOutput } from "./compressor.ts";
import { Decompressor, DEFAULT_MAX_INFLATED_SIZE } from "./decompressor.ts";

/**
 * Options of a {@linkcode DeflateContext}: how messages are compressed, which are not, and
 * the inflated size limit.
 *
 * @example
 * ```ts
 * import type { DeflateContextOptions } from "./context.ts";
 *
 * const options: DeflateContextOptions = { threshold: 64, maxMessageSize: 1 << 20 };
 * console.log(options.threshold); // 64
 * ```
 */
export interface DeflateContextOptions {
  /** zlib level, -1 (6) or 0..9. Default -1. */
  level?: number;
  /** zlib memLevel of every compressor, 1..9. Default 8. */
  memLevel?: number;
  /** Messages shorter than this many bytes are sent uncompressed. Default 0. */
  threshold?: number;
  /** Largest inflated message (the connection's maxMessageSize). Default 64 MiB. */
  maxMessageSize?: number;
  /** Idle shared decompressors kept for reuse; more are freed. Default 2. */
  idleDecompressors?: number;
}

/**
 * Returned by the compress methods for a message to send uncompressed (RSV1 clear): shorter
 * than the threshold, or not smaller once compressed.
 */
export const SEND_UNCOMPRESSED: -1 = -1;

/**
 * Shared compressors and decompressors of one manager (one thread). Not thread-safe, like
 * everything on a manager's loop.
 *
 * @example Compress a broadcast once for every connection agreeing to window 15
 * ```ts
 * import { DeflateContext } from "./context.ts";
 *
 * const context = new DeflateContext({ threshold: 16 });
 * const message = new TextEncoder().encode('{"price":42,"symbol":"ABC","note":"hello hello hello"}');
 * const n = context.compress(message, 0, message.length, 15);
 * console.log(n > 0 && n < message.length); // true: frame context.output[0..n) with RSV1 once
 * context.free();
 * ```
 */
export class DeflateContext {
  /** zlib level of every compressor. */
  readonly level: number;
  /** zlib memLevel of every compressor. */
  readonly memLevel: number;
  /** Smallest message compressed. */
  readonly threshold: number;
  /** Largest inflated message. */
  readonly maxMessageSize: number;
  readonly #idleLimit: number;
  // Shared compressors by effective window bits (8 runs as 9).
  readonly #compressors: Array<Compressor | undefined> = [];
  readonly #idle: Decompressor[] = [];
  #lent = 0;
  #freed = false;

  /**
   * Creates the context. Nothing is allocated until used.
   *
   * @param options Level, memLevel, threshold, size limit.
   * @throws {FdwsError} `INVALID_OPTIONS` for a value out of range.
   */
  constructor(options: DeflateContextOptions = {}) {
    this.level = options.level ?? -1;
    this.memLevel = options.memLevel ?? 8;
    this.threshold = options.threshold ?? 0;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_INFLATED_SIZE;
    this.#idleLimit = options.idleDecompressors ?? 2;
    if (!(Number.isSafeInteger(this.threshold) && this.threshold >= 0)) {
      throw new FdwsError("INVALID_OPTIONS", "fdws: threshold must be a non-negative integer");
    }
    if (!(Number.isSafeInteger(this.#idleLimit) && this.#idleLimit >= 0)) {
      throw new FdwsError("INVALID_OPTIONS", "fdws: idleDecompressors must be >= 0");
    }
    // Checks level and memLevel now rather than at the first message.
    new Compressor({ level: this.level, memLevel: this.memLevel }).free();
    new Decompressor({ maxMessageSize: this.maxMessageSize }).free();
  }

  /**
   * The output buffer of every compressor (shared, see `Compressor.output`): after a
   * compress call returned `n >= 0`, the payload is its first `n` bytes.
   */
  get output(): Uint8Array {
    return compressorOutput();
  }

  #compressor(windowBits: number): Compressor {
    const bits = windowBits === 8 ? 9 : windowBits;
    let c = this.#compressors[bits];
    if (c === undefined) {
      c = this.#compressors[bits] = new Compressor({
        windowBits: bits,
        memLevel: this.memLevel,
        level: this.level,
        noContextTakeover: true,
      });
    }
    return c;
  }

  /**
   * Compresses `data[start..end)` without context takeover, within a window of
   * `windowBits` (the `*_max_window_bits` agreed for the receiving side): the payload of a
   * message with RSV1 set for every connection whose session reports the same
   * `sharedWindowBits`. A broadcast calls this once per distinct window (usually one).
   *
   * @param data Message bytes.
   * @param start First index.
   * @param end End index (exclusive).
   * @param windowBits 8..15.
   * @returns The payload length in {@linkcode DeflateContext.output}, or
   * {@linkcode SEND_UNCOMPRESSED}.
   */
  compress(data: Uint8Array, start: number, end: number, windowBits: number): number {
    if (this.#freed) {
      throw new FdwsError("ZLIB_STREAM_ENDED", "fdws: deflate context used after free()");
    }
    const length = end - start;
    if (length < this.threshold) return SEND_UNCOMPRESSED;
    const n = this.#compressor(windowBits).compress(data, start, end);
    // Without context takeover nothing depends on this output: send the original if the
    // compressed form is no smaller.
    return n < length ? n : SEND_UNCOMPRESSED;
  }

  /**
   * Lends a decompressor for one message from a peer that compresses without context
   * takeover (window 15 covers every agreed window). Give it back with
   * {@linkcode DeflateContext.release} after the message's last fragment.
   *
   * @returns An idle decompressor.
   */
  borrow(): Decompressor {
    if (this.#freed) {
      throw new FdwsError("ZLIB_STREAM_ENDED", "fdws: deflate context used after free()");
    }
    this.#lent++;
    return this.#idle.pop() ??
      new Decompressor({ maxMessageSize: this.maxMessageSize, noContextTakeover: true });
  }

  /**
   * Takes back a decompressor lent by {@linkcode DeflateContext.borrow}, dropping any
   * message in progress. Kept for reuse up to the idle limit, freed beyond it.
   *
   * @param d The decompressor.
   */
  release(d: Decompressor): void {
    this.#lent--;
    d.abort();
    if (this.#freed || this.#idle.length >= this.#idleLimit) d.free();
    else this.#idle.push(d);
  }

  /** Decompressors lent and not yet released. */
  get lent(): number {
    return this.#lent;
  }

  /** Frees every shared stream. Lent decompressors are freed when released. Idempotent. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    for (const c of this.#compressors) c?.free();
    this.#compressors.length = 0;
    for (const d of this.#idle) d.free();
    this.#idle.length = 0;
  }
}

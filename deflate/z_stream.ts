/**
 * One zlib stream: a `z_stream` structure in memory we own, initialised for raw deflate or
 * raw inflate, fed and drained through raw addresses, and ended exactly once.
 *
 * Memory and lifetime:
 * - The structure lives in its own `ArrayBuffer`. V8 never moves an `ArrayBuffer`'s backing
 *   store, which matters because zlib's internal state keeps a pointer back to the structure
 *   and refuses (Z_STREAM_ERROR) a structure that moved.
 * - zlib's state (window, hash tables) is `malloc`ed by zlib and only released by
 *   `deflateEnd`/`inflateEnd`: {@linkcode ZStream.end} calls it once and marks the stream
 *   ended, so a double end is impossible. A `FinalizationRegistry` ends streams whose owner
 *   was collected without calling `end`; it is a safety net for bugs, not the way streams
 *   are meant to be released (it may run late or never).
 * - {@linkcode liveStreams} counts streams initialised and not yet ended, for tests and
 *   leak checks.
 *
 * Addresses: `Deno.UnsafePointer.of` costs about 0.5 µs per call, more than compressing a
 * short message. Input of up to {@linkcode STAGING_BYTES} is therefore copied into one
 * staging buffer whose address is taken once per isolate (a 4 KB copy costs ~0.05 µs);
 * only larger input is passed by its own address. Output buffers belong to the callers,
 * which take their address once per allocation.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { Z_DEFAULT_STRATEGY, Z_DEFLATED, Z_OK, Z_STREAM, zlib } from "../ffi/zlib.ts";

/** Input up to this many bytes is copied into the staging buffer instead of pinned. */
export const STAGING_BYTES = 32 * 1024;

/**
 * Thrown when zlib refuses to initialise a stream (`code` `"ZLIB_INIT_FAILED"`, e.g. out of
 * memory) or when a stream is used after {@linkcode ZStream.end} (`"ZLIB_STREAM_ENDED"`).
 *
 * @example
 * ```ts
 * import { ZStreamError } from "./z_stream.ts";
 *
 * console.log(new ZStreamError("ZLIB_STREAM_ENDED", "ended").code); // "ZLIB_STREAM_ENDED"
 * ```
 */
export class ZStreamError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code `"ZLIB_INIT_FAILED"` or `"ZLIB_STREAM_ENDED"`.
   * @param message Human-readable description.
   */
  constructor(code: "ZLIB_INIT_FAILED" | "ZLIB_STREAM_ENDED", message: string) {
    super(code, message);
    this.name = "ZStreamError";
  }
}

/**
 * Address of the first byte of `buf` as a number: user-space addresses on the supported
 * systems fit in 53 bits, so no BigInt is needed once it is taken.
 *
 * @example
 * ```ts
 * import { addressOf } from "./z_stream.ts";
 *
 * const buf = new Uint8Array(new ArrayBuffer(16));
 * console.log(addressOf(buf.subarray(4)) - addressOf(buf)); // 4
 * ```
 *
 * @param buf A non-empty buffer.
 * @returns The address, or 0 for an empty buffer.
 */
export function addressOf(buf: Uint8Array): number {
  if (buf.byteLength === 0) return 0;
  const value = Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf));
  if (value > 0x1f_ffff_ffff_ffffn) {
    throw new FdwsError("UNSUPPORTED_PLATFORM", "fdws: buffer address above 2^53");
  }
  return Number(value);
}

type Kind = "deflate" | "inflate";

interface Held {
  readonly struct: Uint8Array;
  readonly kind: Kind;
}

let live = 0;

function endStruct(struct: Uint8Array, kind: Kind): void {
  const { sym } = zlib();
  if (kind === "deflate") sym.deflateEnd(struct);
  else sym.inflateEnd(struct);
  live--;
}

const registry = new FinalizationRegistry<Held>((held) => endStruct(held.struct, held.kind));

/**
 * Number of zlib streams initialised and not yet ended in this isolate.
 *
 * @example
 * ```ts
 * import { liveStreams, ZStream } from "./z_stream.ts";
 *
 * const before = liveStreams();
 * const stream = ZStream.inflate(15);
 * console.log(liveStreams() - before); // 1
 * stream.end();
 * console.log(liveStreams() - before); // 0
 * ```
 *
 * @returns The count.
 */
export function liveStreams(): number {
  return live;
}

// inflateGetDictionary's length out-parameter.
const dictionaryLength = new Uint32Array(new ArrayBuffer(4));

// The staging buffer and its address, allocated on first use.
let staging: Uint8Array | null = null;
let stagingAddress = 0;

function stagingBuffer(): Uint8Array {
  if (staging === null) {
    staging = new Uint8Array(new ArrayBuffer(STAGING_BYTES));
    stagingAddress = addressOf(staging);
  }
  return staging;
}

/**
 * A raw deflate or inflate stream. Low level: it sets the input and output windows and
 * calls zlib; the compressor and decompressor decide what to feed and what to do with the
 * result. Not for use by two owners at a time.
 *
 * @example Compress "Hello" and see the RFC 7692 §7.2.3.1 bytes
 * ```ts
 * import { ZStream } from "./z_stream.ts";
 * import { Z_SYNC_FLUSH } from "../ffi/zlib.ts";
 *
 * const stream = ZStream.deflate(-1, 15, 8);
 * const out = new Uint8Array(new ArrayBuffer(64));
 * stream.setInput(new TextEncoder().encode("Hello"), 0, 5);
 * stream.setOutput(out, 0, out.length);
 * stream.deflate(Z_SYNC_FLUSH);
 * const bytes = out.subarray(0, out.length - stream.availOut);
 * console.log(Array.from(bytes, (b) => b.toString(16)).join(" ")); // "f2 48 cd c9 c9 7 0 0 0 ff ff"
 * stream.end();
 * ```
 */
export class ZStream {
  /** The `z_stream` bytes, passed to every zlib call. */
  readonly struct: Uint8Array;
  readonly #view: DataView;
  readonly #kind: Kind;
  #ended = false;

  private constructor(kind: Kind) {
    this.struct = new Uint8Array(new ArrayBuffer(Z_STREAM.size));
    this.#view = new DataView(this.struct.buffer);
    this.#kind = kind;
  }

  /**
   * A raw deflate stream (`deflateInit2` with negative windowBits).
   *
   * @param level -1 (zlib's default, 6) or 0..9.
   * @param windowBits 9..15 (zlib refuses 8 for raw deflate).
   * @param memLevel 1..9.
   * @returns The stream.
   * @throws {ZStreamError} `ZLIB_INIT_FAILED` when zlib refuses (memory, parameters).
   */
  static deflate(level: number, windowBits: number, memLevel: number): ZStream {
    const { sym, version } = zlib();
    const stream = new ZStream("deflate");
    const rc = sym.deflateInit2_(
      stream.struct,
      level,
      Z_DEFLATED,
      -windowBits,
      memLevel,
      Z_DEFAULT_STRATEGY,
      version,
      Z_STREAM.size,
    );
    stream.#started(
      rc,
      `deflateInit2(level ${level}, windowBits -${windowBits}, memLevel ${memLevel})`,
    );
    return stream;
  }

  /**
   * A raw inflate stream (`inflateInit2` with negative windowBits).
   *
   * @param windowBits 8..15: the largest window the peer may use.
   * @returns The stream.
   * @throws {ZStreamError} `ZLIB_INIT_FAILED` when zlib refuses.
   */
  static inflate(windowBits: number): ZStream {
    const { sym, version } = zlib();
    const stream = new ZStream("inflate");
    const rc = sym.inflateInit2_(stream.struct, -windowBits, version, Z_STREAM.size);
    stream.#started(rc, `inflateInit2(windowBits -${windowBits})`);
    return stream;
  }

  #started(rc: number, call: string): void {
    if (rc !== Z_OK) {
      this.#ended = true;
      throw new ZStreamError("ZLIB_INIT_FAILED", `fdws: ${call} failed with ${rc}`);
    }
    live++;
    registry.register(this, { struct: this.struct, kind: this.#kind }, this);
  }

  /** `true` once {@linkcode ZStream.end} ran (or initialisation failed). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes of input not consumed yet. */
  get availIn(): number {
    return this.#view.getUint32(Z_STREAM.availIn, true);
  }

  /** Room left in the output window. */
  get availOut(): number {
    return this.#view.getUint32(Z_STREAM.availOut, true);
  }

  /**
   * zlib's `data_type`; for inflate, bit 128 is set when it stopped at a block boundary
   * and bit 64 while it decodes a block marked final.
   */
  get dataType(): number {
    return this.#view.getInt32(Z_STREAM.dataType, true);
  }

  #setAddress(offset: number, address: number): void {
    this.#view.setUint32(offset, address >>> 0, true);
    this.#view.setUint32(offset + 4, Math.floor(address / 4294967296), true);
  }

  /**
   * Sets the input to `buf[start..end)` (at most 2^32 - 1 bytes). Short input is copied
   * into the shared staging buffer, which stays valid until the next `setInput` of any
   * stream: consume it before feeding another stream.
   *
   * @param buf Bytes to consume.
   * @param start First index.
   * @param end End index (exclusive).
   */
  setInput(buf: Uint8Array, start: number, end: number): void {
    const length = end - start;
    let address: number;
    if (length <= STAGING_BYTES) {
      const stage = stagingBuffer();
      stage.set(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
      address = stagingAddress;
    } else {
      address = addressOf(buf) + start;
    }
    this.#setAddress(Z_STREAM.nextIn, address);
    this.#view.setUint32(Z_STREAM.availIn, length, true);
  }

  /**
   * Sets the input to `length` bytes at `address` (memory the caller keeps alive and
   * unmoved until consumed).
   *
   * @param address Address of the first byte.
   * @param length Number of bytes.
   */
  setInputAddress(address: number, length: number): void {
    this.#setAddress(Z_STREAM.nextIn, address);
    this.#view.setUint32(Z_STREAM.availIn, length, true);
  }

  /**
   * Copies `buf[start..end)` then `suffix` into the staging buffer and makes that the input,
   * when both fit (`false` otherwise, nothing set). Saves a second call for the
   * decompressor's 4-byte tail.
   *
   * @param buf First part.
   * @param start First index.
   * @param end End index (exclusive).
   * @param suffix Second part.
   * @returns Whether the input was set.
   */
  setStagedInput(buf: Uint8Array, start: number, end: number, suffix: Uint8Array): boolean {
    const length = end - start;
    if (length + suffix.length > STAGING_BYTES) return false;
    const stage = stagingBuffer();
    stage.set(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
    stage.set(suffix, length);
    this.#setAddress(Z_STREAM.nextIn, stagingAddress);
    this.#view.setUint32(Z_STREAM.availIn, length + suffix.length, true);
    return true;
  }

  /**
   * Sets the output window to `buf[start..end)`.
   *
   * @param buf Destination.
   * @param start First index.
   * @param end End index (exclusive).
   */
  setOutput(buf: Uint8Array, start: number, end: number): void {
    this.setOutputAddress(addressOf(buf) + start, end - start);
  }

  /**
   * Sets the output window to `length` bytes at `address` (a buffer whose address the
   * caller took once with {@linkcode addressOf}).
   *
   * @param address Address of the first byte.
   * @param length Room in bytes.
   */
  setOutputAddress(address: number, length: number): void {
    this.#setAddress(Z_STREAM.nextOut, address);
    this.#view.setUint32(Z_STREAM.availOut, length, true);
  }

  #live(): void {
    if (this.#ended) {
      throw new ZStreamError("ZLIB_STREAM_ENDED", "fdws: zlib stream used after end");
    }
  }

  /**
   * `deflate(strm, flush)`.
   *
   * @param flush A flush mode (Z_SYNC_FLUSH).
   * @returns zlib's return code.
   */
  deflate(flush: number): number {
    this.#live();
    return zlib().sym.deflate(this.struct, flush);
  }

  /**
   * `inflate(strm, flush)`.
   *
   * @param flush A flush mode (Z_SYNC_FLUSH).
   * @returns zlib's return code.
   */
  inflate(flush: number): number {
    this.#live();
    return zlib().sym.inflate(this.struct, flush);
  }

  /** `deflateReset`/`inflateReset`: forget the sliding window, keep the allocations. */
  reset(): void {
    this.#live();
    const { sym } = zlib();
    if (this.#kind === "deflate") sym.deflateReset(this.struct);
    else sym.inflateReset(this.struct);
  }

  /**
   * Inflate only: `inflateReset` keeping the sliding window (`inflateGetDictionary` then
   * `inflateSetDictionary`), so that data after a block marked final may still refer to
   * what came before it.
   *
   * @param scratch Room for the window (2^windowBits bytes).
   */
  restartKeepingWindow(scratch: Uint8Array): void {
    this.#live();
    const { sym } = zlib();
    sym.inflateGetDictionary(this.struct, scratch, dictionaryLength);
    sym.inflateReset(this.struct);
    const length = dictionaryLength[0];
    if (length > 0) sym.inflateSetDictionary(this.struct, scratch, length);
  }

  /** Releases zlib's state. Safe to call more than once: only the first call ends it. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    registry.unregister(this);
    endStruct(this.struct, this.#kind);
  }
}

/**
 * Incremental RFC 6455 frame parser: turns a byte stream into messages, pings, pongs and a
 * close, and fails the connection (with the close code to send) on any protocol violation.
 *
 * RSV2 and RSV3 must be zero; RSV1 marks a compressed message when the handler offers a
 * {@linkcode MessageInflater} (permessage-deflate, RFC 7692), and must be zero otherwise.
 * Text is validated as UTF-8 while it streams in and fails at the first invalid byte, across
 * fragments and inside frames whose tail has not arrived (compressed text is validated once
 * inflated).
 *
 * Memory: between messages a parser holds only numbers and `null`s. A frame split across
 * reads keeps its header in number fields and its payload in a buffer that grows with the
 * bytes that actually arrived (doubling, capped at the announced size), so a header that
 * announces a large payload reserves nothing; text is decoded as it arrives, so no bytes of
 * it are kept. An optional {@linkcode MessageBudget} bounds what all the parsers of one
 * owner hold in incomplete messages together.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";
import { isValidReceivedCloseCode } from "./close_codes.ts";
import { applyMask } from "./mask.ts";
import { OPCODE_CLOSE, OPCODE_PING, OPCODE_TEXT } from "./opcodes.ts";

/**
 * Receives what a {@linkcode FrameParser} finds, synchronously from within `push`.
 *
 * @example Collect everything
 * ```ts
 * import type { FrameHandler } from "./parser.ts";
 *
 * const seen: string[] = [];
 * const handler: FrameHandler = {
 *   onMessage: (data) => seen.push(typeof data === "string" ? data : `${data.length} bytes`),
 *   onPing: (payload) => seen.push(`ping ${payload.length}`),
 *   onPong: (payload) => seen.push(`pong ${payload.length}`),
 *   onClose: (code, reason) => seen.push(`close ${code} ${reason}`),
 *   onFail: (code, reason) => seen.push(`fail ${code} ${reason}`),
 * };
 * console.log(typeof handler.onMessage); // "function"
 * ```
 */
export interface FrameHandler {
  /**
   * A complete data message: a string for text, a `Uint8Array` for binary. Binary data is an
   * owned, standalone copy (byte offset 0, its own `ArrayBuffer`), safe to keep, unless
   * `lent` is true (a parser with {@linkcode FrameParserOptions.lend}): then it is a view
   * valid only until this call returns, to be read or copied before.
   */
  onMessage(data: string | Uint8Array, lent?: boolean): void;
  /** A ping; the payload (0–125 bytes) is an owned copy. */
  onPing(payload: Uint8Array): void;
  /** A pong; the payload (0–125 bytes) is an owned copy. */
  onPong(payload: Uint8Array): void;
  /**
   * The peer's close frame, validated. `code` is 1005 and `reason` `""` when the payload was
   * empty. The parser is finished.
   */
  onClose(code: number, reason: string): void;
  /**
   * The peer violated the protocol: fail the connection, sending a close frame with `code`
   * (1002 protocol error, 1007 invalid UTF-8, 1009 too big). The parser is finished.
   */
  onFail(code: number, reason: string): void;
  /**
   * The decompressor of this connection when permessage-deflate was negotiated: messages
   * whose first frame has RSV1 set are fed to it. Absent or null: RSV1 fails with 1002.
   */
  readonly inflater?: MessageInflater | null;
}

/**
 * Inflates the compressed messages of one connection (RFC 7692 §7.2.2) for a
 * {@linkcode FrameParser}: the payload bytes of a message whose first frame had RSV1 set
 * arrive with {@linkcode MessageInflater.push} as they come in, then
 * {@linkcode MessageInflater.finish} ends the message.
 *
 * @example An inflater that takes stored (uncompressed) bytes as they are
 * ```ts
 * import type { MessageInflater } from "./parser.ts";
 *
 * class Identity implements MessageInflater {
 *   size = 0;
 *   error = 0;
 *   #parts: Uint8Array[] = [];
 *   push(buf: Uint8Array, start: number, end: number): boolean {
 *     this.#parts.push(buf.slice(start, end));
 *     this.size += end - start;
 *     return true;
 *   }
 *   finish(): Uint8Array {
 *     const out = new Uint8Array(this.size);
 *     let at = 0;
 *     for (const p of this.#parts) {
 *       out.set(p, at);
 *       at += p.length;
 *     }
 *     this.reset();
 *     return out;
 *   }
 *   reset(): void {
 *     this.#parts = [];
 *     this.size = 0;
 *   }
 * }
 * console.log(new Identity().size); // 0
 * ```
 */
export interface MessageInflater {
  /** Bytes inflated so far for the message in progress. */
  readonly size: number;
  /**
   * Why the last `push` or `finish` failed: 1009 when the inflated message passed the
   * inflater's size limit, 1007 when the compressed data is invalid; 0 after success.
   */
  readonly error: number;
  /**
   * Feeds `buf[start..end)`, compressed payload bytes (already unmasked).
   * @returns false on failure (see {@linkcode MessageInflater.error}).
   */
  push(buf: Uint8Array, start: number, end: number): boolean;
  /**
   * The last frame of the message arrived: the inflated message, valid until the next call
   * (the parser copies or decodes it at once), or null on failure (see
   * {@linkcode MessageInflater.error}).
   */
  finish(): Uint8Array | null;
  /** Drops the message in progress (the connection failed or was torn down). */
  reset(): void;
}

/**
 * Bytes that the parsers of one owner may hold in incomplete messages together. A parser
 * takes bytes as a message's buffer grows and gives them back when the message is
 * delivered or dropped; when {@linkcode MessageBudget.take} refuses, the connection fails
 * with 1013 (try again later).
 *
 * @example A budget of 1 MiB
 * ```ts
 * import type { MessageBudget } from "./parser.ts";
 *
 * let free = 1 << 20;
 * const budget: MessageBudget = {
 *   take(bytes) {
 *     if (bytes > free) return false;
 *     free -= bytes;
 *     return true;
 *   },
 *   give(bytes) {
 *     free += bytes;
 *   },
 * };
 * console.log(budget.take(4096)); // true
 * ```
 */
export interface MessageBudget {
  /** Reserves `bytes`; false when they are not available. */
  take(bytes: number): boolean;
  /** Returns `bytes` taken before. */
  give(bytes: number): void;
}

/**
 * Where a parser that lends its binary messages ({@linkcode FrameParserOptions.lend}) gets
 * the buffers it reassembles them in, and gives them back once the handler returns.
 *
 * @example A pool that keeps one free buffer per size
 * ```ts
 * import type { MessageBufferPool } from "./parser.ts";
 *
 * const free = new Map<number, Uint8Array>();
 * const pool: MessageBufferPool = {
 *   acquire: (length) => {
 *     const kept = free.get(length);
 *     free.delete(length);
 *     return kept ?? new Uint8Array(length);
 *   },
 *   release: (buffer) => void free.set(buffer.length, buffer),
 * };
 * const a = pool.acquire(1024);
 * pool.release(a);
 * console.log(pool.acquire(1024) === a); // true
 * ```
 */
export interface MessageBufferPool {
  /** A buffer of exactly `length` bytes (contents undefined) that the parser holds. */
  acquire(length: number): Uint8Array;
  /** Gives back a buffer from {@linkcode MessageBufferPool.acquire}. */
  release(buffer: Uint8Array): void;
}

/**
 * Options of {@linkcode FrameParser}.
 *
 * @example A client that accepts messages of up to 1 MiB
 * ```ts
 * import { FrameParser, type FrameParserOptions } from "./parser.ts";
 *
 * const options: FrameParserOptions = { role: "client", maxMessageSize: 1 << 20 };
 * const parser = new FrameParser(options);
 * console.log(parser.finished); // false
 * ```
 */
export interface FrameParserOptions {
  /**
   * Which end this parser runs on. A server requires every frame from the peer to be masked,
   * a client requires every frame to be unmasked; anything else fails with 1002.
   */
  role: "server" | "client";
  /**
   * Largest message payload in bytes, summed over all fragments. A frame header announcing
   * more fails with 1009 before any of the payload is buffered. Defaults to
   * {@linkcode DEFAULT_MAX_MESSAGE_SIZE} (64 MiB). `Infinity` disables the limit, except that
   * a text message can never exceed the engine's longest string (2^29 - 24 UTF-8 bytes are
   * always accepted).
   */
  maxMessageSize?: number;
  /**
   * Largest number of frames one message may span; more fails with 1009. Bounds the work an
   * endless stream of empty continuation frames can cause. Defaults to
   * {@linkcode DEFAULT_MAX_FRAGMENTS}; `Infinity` disables the limit.
   */
  maxFragments?: number;
  /** Shared bound on the bytes held in incomplete messages; none by default. */
  budget?: MessageBudget | null;
  /**
   * Lend binary messages instead of giving them away: `onMessage` gets a view valid only
   * until it returns (and `lent` true) — of the input when the message arrived whole in one
   * push, of the inflater's output, or of a buffer from this pool, given back when
   * `onMessage` returns. Saves an allocation and a copy per binary message, and the garbage
   * a stream of large messages leaves until the engine collects external memory. Default
   * null: every binary message is a fresh copy.
   */
  lend?: MessageBufferPool | null;
}

/**
 * Thrown by the {@linkcode FrameParser} constructor for invalid options; `code` is
 * `"INVALID_OPTIONS"`. (Protocol violations by the peer are reported through
 * `FrameHandler.onFail`, never thrown.)
 *
 * @example
 * ```ts
 * import { FrameParser, FrameParserOptionsError } from "./parser.ts";
 *
 * try {
 *   new FrameParser({ role: "server", maxMessageSize: -1 });
 * } catch (err) {
 *   if (err instanceof FrameParserOptionsError) console.log(err.code); // "INVALID_OPTIONS"
 * }
 * ```
 */
export class FrameParserOptionsError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param message Human-readable description.
   */
  constructor(message: string) {
    super("INVALID_OPTIONS", message);
    this.name = "FrameParserOptionsError";
  }
}

/**
 * Default {@linkcode FrameParserOptions.maxMessageSize}: 64 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_MESSAGE_SIZE } from "./parser.ts";
 *
 * console.log(DEFAULT_MAX_MESSAGE_SIZE === 64 * 1024 * 1024); // true
 * ```
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/**
 * Default {@linkcode FrameParserOptions.maxFragments}: 2^20, enough for a maximum-size
 * (64 MiB) message in 64-byte fragments.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FRAGMENTS } from "./parser.ts";
 *
 * console.log(DEFAULT_MAX_FRAGMENTS); // 1048576
 * ```
 */
export const DEFAULT_MAX_FRAGMENTS = 1 << 20;

// Parser states. Headers normally arrive whole and are parsed in one go; the byte-wise
// states only run for a header split across reads.
const ST_HEADER = 0;
const ST_B1 = 1;
const ST_EXT = 2;
const ST_MASK = 3;
const ST_PAYLOAD = 4;

const PROTOCOL_ERROR = 1002;
const INVALID_PAYLOAD = 1007;
const MESSAGE_TOO_BIG = 1009;
const TRY_AGAIN_LATER = 1013;
/** First capacity of a message buffer that grows with the payload. */
const MIN_GROWTH = 4096;

/**
 * Compressed payload goes to the inflater at most this many bytes at a time: zlib turns 2 KiB
 * of a decompression bomb into about 1.3 MiB (10 ms on the benchmark machine), which bounds
 * what one step can take before the push checks its budget below.
 */
const INFLATE_SLICE = 2048;
/**
 * Inflated bytes after which a push stops at a slice boundary and leaves the rest of its
 * input for a later turn of the loop (see {@linkcode FrameParser.yielded}), so that one
 * connection's compressed message cannot hold the loop for the whole of `maxMessageSize`.
 */
export const INFLATE_BUDGET = 512 * 1024;

// Deno's lenient decoder is 3–10x faster than the fatal one; it writes U+FFFD for any invalid
// input, so text without U+FFFD is valid and only text containing it (rare) is re-decoded
// strictly. ignoreBOM keeps a leading U+FEFF, which is message content in WebSocket.
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// V8's longest string (2^29 - 24 UTF-16 units). A text message of at most this many UTF-8
// bytes always fits; a longer one fails with 1009 up front rather than throwing mid-push.
const MAX_TEXT_BYTES = 0x1fffffe8;

function isLimit(value: number, min: number): boolean {
  return value === Infinity || (Number.isSafeInteger(value) && value >= min);
}

/** Decodes buf[start..end) as complete UTF-8; `null` if invalid or truncated. */
function decodeUtf8(buf: Uint8Array, start: number, end: number): string | null {
  if (start === end) return "";
  const view = buf.subarray(start, end);
  const text = lenientDecoder.decode(view);
  if (text.indexOf("\uFFFD") === -1) return text;
  try {
    return strictDecoder.decode(view);
  } catch {
    return null;
  }
}

/** Number of bytes in the UTF-8 sequence led by `lead` (assumed to be a lead byte). */
function sequenceLength(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
}

/**
 * Whether `b` may follow `lead` as the second byte. The narrowed ranges exclude overlong
 * forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4) at the earliest byte
 * that reveals them (Unicode Table 3-7).
 */
function validSecondByte(lead: number, b: number): boolean {
  switch (lead) {
    case 0xe0:
      return b >= 0xa0 && b <= 0xbf;
    case 0xed:
      return b >= 0x80 && b <= 0x9f;
    case 0xf0:
      return b >= 0x90 && b <= 0xbf;
    case 0xf4:
      return b >= 0x80 && b <= 0x8f;
    default:
      return (b & 0xc0) === 0x80;
  }
}

/**
 * Incremental WebSocket frame parser for one connection. Feed it bytes as they arrive with
 * {@linkcode FrameParser.push}; it calls the handler synchronously for every complete
 * message, ping, pong and close, or once with `onFail` on a protocol violation.
 *
 * @example A server parsing a masked "Hello" (RFC 6455 §5.7)
 * ```ts
 * import { FrameParser } from "./parser.ts";
 *
 * const parser = new FrameParser({ role: "server" });
 * const bytes = new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
 * parser.push(bytes, 0, bytes.length, {
 *   onMessage: (data) => console.log(data), // "Hello"
 *   onPing: () => {},
 *   onPong: () => {},
 *   onClose: () => {},
 *   onFail: (code, reason) => console.log("fail", code, reason),
 * });
 * ```
 */
export class FrameParser {
  readonly #server: boolean;
  readonly #maxMessageSize: number;
  readonly #maxFragments: number;
  readonly #budget: MessageBudget | null;
  readonly #lend: MessageBufferPool | null;
  #finished = false;
  // Set by interrupt(): the push in progress returns after the current dispatch.
  #interrupted = false;
  // Where the last push stopped consuming (its `end` unless interrupted or yielded).
  #stoppedAt = 0;
  // The last push stopped because it inflated its budget; bytes inflated so far in it.
  #yielded = false;
  #inflatedInPush = 0;
  // Bumped by reset() so that a push whose handler reset the parser stops dispatching.
  #epoch = 0;
  #state = ST_HEADER;
  // First header byte (FIN, opcode) of the frame being read.
  #b0 = 0;
  // Extended-length or masking-key bytes still missing while in ST_EXT / ST_MASK.
  #headerLeft = 0;
  // ST_EXT: the 7-bit length code (126 or 127) that announced the extended length.
  #lengthCode = 0;
  // ST_EXT: the length accumulated so far; ST_PAYLOAD: payload bytes still to come.
  #left = 0;
  // Masking key packed little-endian, rotated so its low byte applies to the next byte.
  #mask = 0;
  // Payload of a control frame split across reads (exact size, at most 125 bytes).
  #control: Uint8Array | null = null;
  #controlFill = 0;
  // The data message in progress: its opcode (0 when none), bytes so far, frames so far.
  #messageOpcode = 0;
  #messageLength = 0;
  #messageFrames = 0;
  // Binary message bytes (exact size for a single frame, doubling for fragments).
  #binary: Uint8Array | null = null;
  // Bytes of the budget held for the message in progress.
  #held = 0;
  // The inflater of a compressed message in progress (null: not compressed).
  #inflater: MessageInflater | null = null;
  // Text decoded so far, and the UTF-8 sequence cut off at the end of the last chunk.
  #text = "";
  #utf8Lead = 0;
  #utf8Value = 0;
  #utf8Need = 0;

  /**
   * Creates a parser for one connection.
   *
   * @param options Role and limits.
   * @throws {FrameParserOptionsError} for an unknown role or a limit that is neither
   * `Infinity` nor a non-negative (for `maxFragments`: positive) integer.
   */
  constructor(options: FrameParserOptions) {
    const { role } = options;
    if (role !== "server" && role !== "client") {
      throw new FrameParserOptionsError(`role must be "server" or "client", got ${role}`);
    }
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!isLimit(maxMessageSize, 0)) {
      throw new FrameParserOptionsError(
        `maxMessageSize must be a non-negative integer or Infinity, got ${maxMessageSize}`,
      );
    }
    const maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS;
    if (!isLimit(maxFragments, 1)) {
      throw new FrameParserOptionsError(
        `maxFragments must be a positive integer or Infinity, got ${maxFragments}`,
      );
    }
    this.#server = role === "server";
    this.#maxMessageSize = maxMessageSize;
    this.#maxFragments = maxFragments;
    this.#budget = options.budget ?? null;
    this.#lend = options.lend ?? null;
  }

  /**
   * `true` once the parser has reported `onClose` or `onFail`; it then ignores all input.
   *
   * @example
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * console.log(new FrameParser({ role: "client" }).finished); // false
   * ```
   */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Consumes `buf[start..end)`, dispatching zero or more handler calls synchronously. Masked
   * payloads are unmasked in place, so those bytes are modified. Delivered data never aliases
   * `buf`. After `onClose` or `onFail` the rest of the input is ignored. If a handler throws,
   * the exception propagates and the remaining bytes of this call are dropped.
   *
   * @param buf Buffer holding the received bytes.
   * @param start First index to consume (inclusive).
   * @param end Last index (exclusive).
   * @param handler Receives the results.
   * @returns `false` once the parser is finished (after `onClose` or `onFail`), else `true`.
   *
   * @example A client receiving a ping and then a close, in one read
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * const parser = new FrameParser({ role: "client" });
   * const bytes = new Uint8Array([0x89, 0x01, 0x2a, 0x88, 0x02, 0x03, 0xe8]);
   * const more = parser.push(bytes, 0, bytes.length, {
   *   onMessage: () => {},
   *   onPing: (payload) => console.log("ping", payload), // Uint8Array [42]
   *   onPong: () => {},
   *   onClose: (code, reason) => console.log("close", code, reason), // 1000 ""
   *   onFail: () => {},
   * });
   * console.log(more); // false
   * ```
   */
  push(buf: Uint8Array, start: number, end: number, handler: FrameHandler): boolean {
    this.#stoppedAt = end;
    this.#yielded = false;
    this.#inflatedInPush = 0;
    if (this.#finished) return false;
    const epoch = this.#epoch;
    this.#interrupted = false;
    let p = start;
    while (p < end) {
      // Inflated its budget (in payload slices or in whole small frames): the rest of the
      // input waits for a later turn of the loop.
      if (this.#inflatedInPush >= INFLATE_BUDGET) {
        this.#yielded = true;
        return this.#stop(p);
      }
      if (this.#state === ST_HEADER && end - p >= 2) {
        const b0 = buf[p];
        const b1 = buf[p + 1];
        let length = b1 & 0x7f;
        let headerLength = length < 126 ? 2 : length === 126 ? 4 : 10;
        if (b1 >= 0x80) headerLength += 4;
        if (end - p >= headerLength) {
          if (!this.#checkFirstBytes(b0, b1, handler)) return false;
          if (length === 126) {
            length = (buf[p + 2] << 8) | buf[p + 3];
            if (!this.#checkMinimal(126, length, handler)) return false;
          } else if (length === 127) {
            const high = ((buf[p + 2] << 24) | (buf[p + 3] << 16) | (buf[p + 4] << 8) |
              buf[p + 5]) >>> 0;
            if (high > 0x7fffffff) {
              this.#fail(handler, PROTOCOL_ERROR, "64-bit payload length has its high bit set");
              return false;
            }
            length = high * 0x100000000 +
              (((buf[p + 6] << 24) | (buf[p + 7] << 16) | (buf[p + 8] << 8) | buf[p + 9]) >>> 0);
            if (!this.#checkMinimal(127, length, handler)) return false;
          }
          if (!this.#checkLength(b0, length, handler)) return false;
          let key = 0;
          if (b1 >= 0x80) {
            const k = p + headerLength - 4;
            key = buf[k] | (buf[k + 1] << 8) | (buf[k + 2] << 16) | (buf[k + 3] << 24);
          }
          p += headerLength;
          // A large compressed frame goes the sliced way even when it arrived whole.
          const sliced = length > INFLATE_SLICE &&
            ((b0 & 0x40) !== 0 || ((b0 & 0x0f) === 0 && this.#inflater !== null));
          if (end - p < length || sliced) {
            this.#b0 = b0;
            this.#mask = key;
            this.#beginPayload(length, handler);
            if (this.#finished) return false;
            continue;
          }
          const e = p + length;
          if (key !== 0) applyMask(buf, p, e, key);
          if (b0 === 0x81) {
            const text = decodeUtf8(buf, p, e);
            if (text === null) {
              this.#fail(handler, INVALID_PAYLOAD, "text message is not valid UTF-8");
              return false;
            }
            p = e;
            handler.onMessage(text);
          } else if (b0 === 0x82) {
            const lent = this.#lend !== null;
            const data = lent ? buf.subarray(p, e) : buf.slice(p, e);
            p = e;
            handler.onMessage(data, lent);
          } else {
            this.#wholeFrame(b0, buf, p, e, handler);
            p = e;
          }
          if (this.#finished) return false;
          if (this.#epoch !== epoch) return true;
          if (this.#interrupted) return this.#stop(p);
          continue;
        }
      }
      if (this.#state === ST_PAYLOAD) {
        let e = end - p < this.#left ? end : p + this.#left;
        const inflating = this.#inflater !== null && (this.#b0 & 0x08) === 0;
        if (inflating && e - p > INFLATE_SLICE) e = p + INFLATE_SLICE;
        this.#payloadChunk(buf, p, e, handler);
        p = e;
      } else {
        this.#headerByte(buf[p++], handler);
      }
      if (this.#finished) return false;
      if (this.#epoch !== epoch) return true;
      if (this.#interrupted) return this.#stop(p);
    }
    return true;
  }

  #stop(at: number): boolean {
    this.#interrupted = false;
    this.#stoppedAt = at;
    return true;
  }

  /**
   * Called by a handler during {@linkcode FrameParser.push}: the push returns right after
   * the current dispatch, keeping its state, and {@linkcode FrameParser.stoppedAt} tells
   * where it stopped, so that the rest can be pushed later (e.g. by another owner of the
   * connection). Outside a push it does nothing.
   *
   * @example Stop after the first message
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * const parser = new FrameParser({ role: "client" });
   * const two = new Uint8Array([0x81, 0x01, 0x61, 0x81, 0x01, 0x62]); // "a", "b"
   * parser.push(two, 0, two.length, {
   *   onMessage: (data) => {
   *     console.log(data); // "a" only
   *     parser.interrupt();
   *   },
   *   onPing() {},
   *   onPong() {},
   *   onClose() {},
   *   onFail() {},
   * });
   * console.log(parser.stoppedAt); // 3
   * ```
   */
  interrupt(): void {
    this.#interrupted = true;
  }

  /**
   * Where the last {@linkcode FrameParser.push} stopped consuming its input: its `end`,
   * unless a handler called {@linkcode FrameParser.interrupt} or the push yielded (see
   * {@linkcode FrameParser.yielded}).
   *
   * @example
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * const parser = new FrameParser({ role: "client" });
   * parser.push(new Uint8Array([0x89, 0x00]), 0, 2, {
   *   onMessage() {},
   *   onPing() {},
   *   onPong() {},
   *   onClose() {},
   *   onFail() {},
   * });
   * console.log(parser.stoppedAt); // 2
   * ```
   */
  get stoppedAt(): number {
    return this.#stoppedAt;
  }

  /**
   * True when the last push stopped early because it inflated {@linkcode INFLATE_BUDGET}
   * bytes of compressed payload: push the rest (from {@linkcode FrameParser.stoppedAt}) in a
   * later turn of the loop, after other connections had theirs.
   */
  get yielded(): boolean {
    return this.#yielded;
  }

  /**
   * True between frames with no message in progress and not finished: the parser then
   * holds nothing of its connection, so one parser can serve many idle connections and a
   * connection needs its own only while a frame or message is split across reads.
   *
   * @example
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * const parser = new FrameParser({ role: "client" });
   * console.log(parser.idle); // true
   * parser.push(new Uint8Array([0x81]), 0, 1, {
   *   onMessage() {},
   *   onPing() {},
   *   onPong() {},
   *   onClose() {},
   *   onFail() {},
   * });
   * console.log(parser.idle); // false: half a header arrived
   * ```
   */
  get idle(): boolean {
    return !this.#finished && this.#state === ST_HEADER && this.#messageOpcode === 0;
  }

  /**
   * Drops any partial frame or message (releasing its buffers) and returns the parser to its
   * initial state, ready for a new byte stream. Called from a handler, it also stops the
   * `push` in progress from dispatching anything more.
   *
   * @example
   * ```ts
   * import { FrameParser } from "./parser.ts";
   *
   * const parser = new FrameParser({ role: "server" });
   * parser.reset(); // e.g. when the connection is torn down
   * console.log(parser.finished); // false
   * ```
   */
  reset(): void {
    this.#epoch++;
    this.#finished = false;
    this.#release();
  }

  #release(): void {
    this.#state = ST_HEADER;
    this.#b0 = 0;
    this.#headerLeft = 0;
    this.#left = 0;
    this.#mask = 0;
    this.#control = null;
    this.#controlFill = 0;
    // A compressed message dropped half way: its inflater must not carry it into the next.
    this.#inflater?.reset();
    this.#endMessage();
  }

  #endMessage(): void {
    if (this.#held !== 0) {
      this.#budget!.give(this.#held);
      this.#held = 0;
    }
    this.#inflater = null;
    this.#messageOpcode = 0;
    this.#messageLength = 0;
    this.#messageFrames = 0;
    if (this.#binary !== null) {
      this.#free(this.#binary);
      this.#binary = null;
    }
    this.#text = "";
    this.#utf8Lead = 0;
    this.#utf8Value = 0;
    this.#utf8Need = 0;
  }

  /**
   * Lets go of a reassembly buffer nobody else has seen: back to the pool when lending, else
   * detached, which frees its memory now rather than at the next collection.
   */
  #free(buffer: Uint8Array): void {
    if (this.#lend !== null) this.#lend.release(buffer);
    else (buffer.buffer as ArrayBuffer).transfer(0);
  }

  #fail(handler: FrameHandler, code: number, reason: string): void {
    this.#finished = true;
    this.#release();
    handler.onFail(code, reason);
  }

  /** Validates everything the first two header bytes decide. */
  #checkFirstBytes(b0: number, b1: number, handler: FrameHandler): boolean {
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) {
      // RFC 7692 §6: only RSV1, only with the extension, only on a message's first frame.
      if ((b0 & 0x30) !== 0 || handler.inflater == null) {
        this.#fail(handler, PROTOCOL_ERROR, "RSV bits set but no extension was negotiated");
        return false;
      }
      if (opcode === 0 || opcode >= 0x8) {
        this.#fail(handler, PROTOCOL_ERROR, "RSV1 set on a control or continuation frame");
        return false;
      }
    }
    if (opcode >= 0x8) {
      if (opcode > 0xa) {
        this.#fail(handler, PROTOCOL_ERROR, `reserved control opcode 0x${opcode.toString(16)}`);
        return false;
      }
      if (b0 < 0x80) {
        this.#fail(handler, PROTOCOL_ERROR, "fragmented control frame");
        return false;
      }
      // A 126/127 length code on a control frame fails once its length is decoded: as a
      // non-minimal encoding below 126 (#checkMinimal), as too long above 125 (#checkLength).
    } else if (opcode === 0) {
      if (this.#messageOpcode === 0) {
        this.#fail(handler, PROTOCOL_ERROR, "continuation frame without a message to continue");
        return false;
      }
      if (this.#messageFrames >= this.#maxFragments) {
        this.#fail(handler, MESSAGE_TOO_BIG, "message split into too many fragments");
        return false;
      }
      this.#messageFrames++;
    } else if (opcode > 0x2) {
      this.#fail(handler, PROTOCOL_ERROR, `reserved data opcode 0x${opcode.toString(16)}`);
      return false;
    } else if (this.#messageOpcode !== 0) {
      this.#fail(handler, PROTOCOL_ERROR, "new message started before the previous one ended");
      return false;
    }
    if ((b1 >= 0x80) !== this.#server) {
      this.#fail(
        handler,
        PROTOCOL_ERROR,
        this.#server ? "client frame is not masked" : "server frame is masked",
      );
      return false;
    }
    return true;
  }

  /**
   * RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length", so a
   * 16-bit length below 126 or a 64-bit one below 65536 is a protocol error.
   */
  #checkMinimal(code: number, length: number, handler: FrameHandler): boolean {
    if (length >= (code === 126 ? 126 : 0x10000)) return true;
    this.#fail(
      handler,
      PROTOCOL_ERROR,
      `payload length ${length} in a ${code === 126 ? 16 : 64}-bit field is not minimally encoded`,
    );
    return false;
  }

  /** Applies the size limits as soon as a frame's length is known, before its payload. */
  #checkLength(b0: number, length: number, handler: FrameHandler): boolean {
    if ((b0 & 0x08) !== 0) {
      if (length > 125) {
        this.#fail(handler, PROTOCOL_ERROR, "control frame payload longer than 125 bytes");
        return false;
      }
    } else {
      const opcode = b0 & 0x0f;
      const total = (opcode === 0 ? this.#messageLength : 0) + length;
      const text = opcode === OPCODE_TEXT ||
        (opcode === 0 && this.#messageOpcode === OPCODE_TEXT);
      if (total > this.#maxMessageSize || (text && total > MAX_TEXT_BYTES)) {
        this.#fail(
          handler,
          MESSAGE_TOO_BIG,
          `message of ${total} bytes exceeds the limit of ${this.#maxMessageSize}`,
        );
        return false;
      }
    }
    return true;
  }

  /** Consumes one byte of a header split across reads. */
  #headerByte(b: number, handler: FrameHandler): void {
    switch (this.#state) {
      case ST_HEADER:
        this.#b0 = b;
        this.#state = ST_B1;
        return;
      case ST_B1: {
        if (!this.#checkFirstBytes(this.#b0, b, handler)) return;
        const length = b & 0x7f;
        if (length < 126) {
          this.#afterLength(length, handler);
        } else {
          this.#left = 0;
          this.#lengthCode = length;
          this.#headerLeft = length === 126 ? 2 : 8;
          this.#state = ST_EXT;
        }
        return;
      }
      case ST_EXT:
        if (this.#headerLeft === 8 && b >= 0x80) {
          this.#fail(handler, PROTOCOL_ERROR, "64-bit payload length has its high bit set");
          return;
        }
        this.#left = this.#left * 256 + b;
        if (
          --this.#headerLeft === 0 && this.#checkMinimal(this.#lengthCode, this.#left, handler)
        ) {
          this.#afterLength(this.#left, handler);
        }
        return;
      default:
        this.#mask |= b << ((4 - this.#headerLeft) << 3);
        if (--this.#headerLeft === 0) this.#beginPayload(this.#left, handler);
    }
  }

  #afterLength(length: number, handler: FrameHandler): void {
    if (!this.#checkLength(this.#b0, length, handler)) return;
    this.#mask = 0;
    if (this.#server) {
      this.#left = length;
      this.#headerLeft = 4;
      this.#state = ST_MASK;
    } else {
      this.#beginPayload(length, handler);
    }
  }

  /** Sets up buffers for a frame whose header is complete but whose payload is not. */
  #beginPayload(length: number, handler: FrameHandler): void {
    const b0 = this.#b0;
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      this.#control = length === 0 ? null : new Uint8Array(length);
      this.#controlFill = 0;
    } else if (opcode !== 0) {
      // Nothing is reserved yet: buffers grow with the payload that actually arrives.
      this.#startMessage(b0, handler);
    }
    if (length === 0) {
      this.#state = ST_HEADER;
      this.#endFrame(handler);
    } else {
      this.#left = length;
      this.#state = ST_PAYLOAD;
    }
  }

  #startMessage(b0: number, handler: FrameHandler): void {
    this.#messageOpcode = b0 & 0x0f;
    this.#messageLength = 0;
    this.#messageFrames = 1;
    if ((b0 & 0x40) !== 0) this.#inflater = handler.inflater!;
  }

  /** Holds `total` bytes of the budget for the message in progress. */
  #hold(total: number, handler: FrameHandler): boolean {
    const budget = this.#budget;
    if (budget === null || total <= this.#held) return true;
    if (!budget.take(total - this.#held)) {
      this.#fail(handler, TRY_AGAIN_LATER, "too many bytes held in incomplete messages");
      return false;
    }
    this.#held = total;
    return true;
  }

  /** Feeds compressed payload to the inflater; fails the connection when it refuses. */
  #inflate(buf: Uint8Array, start: number, end: number, handler: FrameHandler): boolean {
    const inflater = this.#inflater!;
    const before = inflater.size;
    if (start !== end && !inflater.push(buf, start, end)) {
      this.#failInflate(inflater, handler);
      return false;
    }
    this.#inflatedInPush += inflater.size - before;
    return this.#hold(inflater.size, handler);
  }

  #failInflate(inflater: MessageInflater, handler: FrameHandler): void {
    if (inflater.error === INVALID_PAYLOAD) {
      this.#fail(handler, INVALID_PAYLOAD, "invalid compressed data");
    } else {
      this.#fail(
        handler,
        MESSAGE_TOO_BIG,
        `message exceeds the limit of ${this.#maxMessageSize} bytes once inflated`,
      );
    }
  }

  /**
   * Makes the binary buffer hold at least `needed` bytes, growing by doubling so that
   * reassembly stays linear, never past `finalSize` (the message's size once its last frame
   * is announced; 0 when unknown, then the size limit caps it). Growing only as bytes
   * arrive keeps a header that announces a large payload from reserving it (at most 4x
   * what arrived); reaching `finalSize` exactly lets the buffer be delivered without a
   * copy.
   */
  #reserve(needed: number, finalSize: number, handler: FrameHandler): boolean {
    const current = this.#binary;
    const capacity = current === null ? 0 : current.length;
    if (needed <= capacity) return true;
    const ceiling = finalSize > 0 ? finalSize : this.#maxMessageSize;
    let size = Math.max(needed, capacity * 2, MIN_GROWTH);
    // A quarter of a message of known size has arrived: reserve all of it now. The last
    // doublings would each copy what arrived into a new buffer and leave the old one as
    // garbage (for a 16 MiB message: 8 MiB copied, 16 MiB of garbage); a sender holding
    // this buffer has sent at least a quarter of it.
    if (finalSize > 0 && needed * 4 >= finalSize) size = finalSize;
    if (size > ceiling) size = Math.max(needed, ceiling);
    if (!this.#hold(size, handler)) return false;
    let next: Uint8Array;
    try {
      next = this.#lend !== null ? this.#lend.acquire(size) : new Uint8Array(size);
    } catch {
      // Only reachable with a very large (or infinite) limit: the engine refused the size.
      this.#fail(handler, MESSAGE_TOO_BIG, `cannot allocate ${size} bytes for a message`);
      return false;
    }
    if (current !== null) {
      if (this.#messageLength !== 0) next.set(current.subarray(0, this.#messageLength));
      this.#free(current);
    }
    this.#binary = next;
    return true;
  }

  /** A frame found whole in the input that is not a single-frame text or binary message. */
  #wholeFrame(b0: number, buf: Uint8Array, start: number, end: number, handler: FrameHandler) {
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      this.#dispatchControl(opcode, buf, start, end, false, handler);
      return;
    }
    if (opcode !== 0) this.#startMessage(b0, handler);
    const length = end - start;
    if (this.#inflater !== null) {
      if (!this.#inflate(buf, start, end, handler)) return;
    } else if (this.#messageOpcode === OPCODE_TEXT) {
      if (!this.#appendText(buf, start, end, handler)) return;
      // Text kept across frames counts against the budget (a whole one is delivered now).
      if (b0 < 0x80 && !this.#hold(this.#messageLength + length, handler)) return;
    } else if (length !== 0) {
      const total = this.#messageLength + length;
      if (!this.#reserve(total, b0 >= 0x80 ? total : 0, handler)) return;
      this.#binary!.set(buf.subarray(start, end), this.#messageLength);
    }
    this.#messageLength += length;
    if (b0 >= 0x80) this.#deliver(handler);
  }

  /** Consumes buf[start..end), part of the payload of the current frame. */
  #payloadChunk(buf: Uint8Array, start: number, end: number, handler: FrameHandler): void {
    const length = end - start;
    if (this.#server) {
      const key = this.#mask;
      applyMask(buf, start, end, key);
      const rotate = (length & 3) << 3;
      if (rotate !== 0) this.#mask = (key >>> rotate) | (key << (32 - rotate));
    }
    if ((this.#b0 & 0x08) !== 0) {
      this.#control!.set(buf.subarray(start, end), this.#controlFill);
      this.#controlFill += length;
    } else {
      if (this.#inflater !== null) {
        if (!this.#inflate(buf, start, end, handler)) return;
      } else if (this.#messageOpcode === OPCODE_TEXT) {
        if (!this.#appendText(buf, start, end, handler)) return;
        if (!this.#hold(this.#messageLength + length, handler)) return;
      } else {
        const final = this.#b0 >= 0x80 ? this.#messageLength + this.#left : 0;
        if (!this.#reserve(this.#messageLength + length, final, handler)) return;
        this.#binary!.set(buf.subarray(start, end), this.#messageLength);
      }
      this.#messageLength += length;
    }
    this.#left -= length;
    if (this.#left === 0) {
      this.#state = ST_HEADER;
      this.#endFrame(handler);
    }
  }

  /** The payload of a frame read across several chunks is complete. */
  #endFrame(handler: FrameHandler): void {
    const b0 = this.#b0;
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      const payload = this.#control ?? new Uint8Array(0);
      this.#control = null;
      this.#dispatchControl(opcode, payload, 0, payload.length, true, handler);
    } else if (b0 >= 0x80) {
      this.#deliver(handler);
    }
  }

  #dispatchControl(
    opcode: number,
    buf: Uint8Array,
    start: number,
    end: number,
    owned: boolean,
    handler: FrameHandler,
  ): void {
    if (opcode === OPCODE_CLOSE) {
      this.#close(buf, start, end, handler);
      return;
    }
    const payload = owned ? buf : buf.slice(start, end);
    if (opcode === OPCODE_PING) handler.onPing(payload);
    else handler.onPong(payload);
  }

  #close(buf: Uint8Array, start: number, end: number, handler: FrameHandler): void {
    const length = end - start;
    let code = 1005;
    let reason = "";
    if (length !== 0) {
      if (length === 1) {
        this.#fail(handler, PROTOCOL_ERROR, "close frame payload of 1 byte");
        return;
      }
      code = (buf[start] << 8) | buf[start + 1];
      if (!isValidReceivedCloseCode(code)) {
        this.#fail(handler, PROTOCOL_ERROR, `invalid close code ${code}`);
        return;
      }
      const decoded = decodeUtf8(buf, start + 2, end);
      if (decoded === null) {
        this.#fail(handler, INVALID_PAYLOAD, "close reason is not valid UTF-8");
        return;
      }
      reason = decoded;
    }
    this.#finished = true;
    this.#release();
    handler.onClose(code, reason);
  }

  /** The final frame of a data message is complete: hand the message over. */
  #deliver(handler: FrameHandler): void {
    const inflater = this.#inflater;
    if (inflater !== null) {
      const out = inflater.finish();
      if (out === null) {
        this.#failInflate(inflater, handler);
        return;
      }
      if (this.#messageOpcode === OPCODE_TEXT) {
        if (out.length > MAX_TEXT_BYTES) {
          this.#fail(handler, MESSAGE_TOO_BIG, `text message of ${out.length} bytes once inflated`);
          return;
        }
        const text = decodeUtf8(out, 0, out.length);
        if (text === null) {
          this.#fail(handler, INVALID_PAYLOAD, "text message is not valid UTF-8");
          return;
        }
        this.#endMessage();
        handler.onMessage(text);
      } else {
        const lent = this.#lend !== null;
        const data = lent ? out : out.slice();
        this.#endMessage();
        handler.onMessage(data, lent);
      }
      return;
    }
    if (this.#messageOpcode === OPCODE_TEXT) {
      if (this.#utf8Need !== 0) {
        this.#fail(handler, INVALID_PAYLOAD, "text message ends inside a UTF-8 sequence");
        return;
      }
      const text = this.#text;
      this.#endMessage();
      handler.onMessage(text);
      return;
    }
    const binary = this.#binary;
    const length = this.#messageLength;
    this.#binary = null;
    this.#endMessage();
    if (binary === null) {
      handler.onMessage(new Uint8Array(0));
    } else if (this.#lend !== null) {
      try {
        handler.onMessage(binary.length === length ? binary : binary.subarray(0, length), true);
      } finally {
        this.#free(binary);
      }
    } else if (binary.length === length) {
      handler.onMessage(binary);
    } else {
      const data = binary.slice(0, length);
      this.#free(binary);
      handler.onMessage(data);
    }
  }

  /**
   * Decodes and appends text bytes that may start or end in the middle of a UTF-8 sequence.
   * A sequence cut off at the end is checked byte by byte and carried over (at most 3 bytes,
   * kept as numbers), so an invalid byte fails the message as soon as it arrives.
   */
  #appendText(buf: Uint8Array, start: number, end: number, handler: FrameHandler): boolean {
    let p = start;
    if (this.#utf8Need !== 0) {
      while (p < end) {
        if (!this.#utf8Continue(buf[p++], handler)) return false;
        if (this.#utf8Need === 0) {
          this.#text += String.fromCodePoint(this.#utf8Value);
          break;
        }
      }
      if (p === end) return true;
    }
    // Find a sequence that starts in the last 3 bytes and runs past the end.
    let tail = end;
    const stop = end - 3 > p ? end - 3 : p;
    for (let i = end - 1; i >= stop; i--) {
      const b = buf[i];
      if (b < 0x80) break;
      if (b >= 0xc0) {
        if (end - i < sequenceLength(b)) tail = i;
        break;
      }
    }
    if (tail > p) {
      const text = decodeUtf8(buf, p, tail);
      if (text === null) {
        this.#fail(handler, INVALID_PAYLOAD, "text message is not valid UTF-8");
        return false;
      }
      this.#text += text;
    }
    if (tail < end) {
      const lead = buf[tail];
      if (lead < 0xc2 || lead > 0xf4) {
        this.#fail(handler, INVALID_PAYLOAD, "text message is not valid UTF-8");
        return false;
      }
      const length = sequenceLength(lead);
      this.#utf8Lead = lead;
      this.#utf8Need = length - 1;
      this.#utf8Value = lead & (length === 2 ? 0x1f : length === 3 ? 0x0f : 0x07);
      for (let i = tail + 1; i < end; i++) {
        if (!this.#utf8Continue(buf[i], handler)) return false;
      }
    }
    return true;
  }

  /** Feeds one continuation byte to the pending UTF-8 sequence. */
  #utf8Continue(b: number, handler: FrameHandler): boolean {
    const lead = this.#utf8Lead;
    const second = this.#utf8Need === sequenceLength(lead) - 1;
    if (second ? !validSecondByte(lead, b) : (b & 0xc0) !== 0x80) {
      this.#fail(handler, INVALID_PAYLOAD, "text message is not valid UTF-8");
      return false;
    }
    this.#utf8Value = (this.#utf8Value << 6) | (b & 0x3f);
    this.#utf8Need--;
    return true;
  }
}

/**
 * Finds where a complete RESP2/RESP3 reply ends, incrementally: bytes arrive in pieces,
 * and a connection hands the scanner what it has; the scanner walks the headers (a bulk
 * string's content is skipped by its length, never read), remembers how far it got and
 * resumes there when more bytes come, so a large reply arriving in many reads is walked
 * once. It allocates nothing and enforces limits on lengths, nesting and line sizes, so a
 * broken or hostile peer cannot make a connection buffer without bound.
 *
 * Once {@link RespScanner.scan} reports a complete reply, a {@link RespCursor} (cursor.ts)
 * reads its values without checking for truncation.
 *
 * @module
 */

import { RespProtocolError } from "./errors.ts";

const CR = 13;
const LF = 10;

/**
 * Limits of a {@link RespScanner}. The defaults are Redis's own limits for what a client
 * may send (`proto-max-bulk-len` 512 MiB) and generous bounds for the rest.
 *
 * @example
 * ```ts
 * import { RespScanner, type RespLimits } from "./scanner.ts";
 * const limits: RespLimits = { maxBulkLength: 1024 * 1024, maxDepth: 8 };
 * console.log(new RespScanner(limits).limits.maxDepth); // 8
 * ```
 */
export interface RespLimits {
  /** Longest bulk string (`$`, `!`, `=`) in bytes. Default 512 MiB. */
  maxBulkLength?: number;
  /** Most elements of one aggregate (map and attribute pairs count twice). Default 2^24. */
  maxAggregateLength?: number;
  /** Deepest nesting of aggregates. Default 32. */
  maxDepth?: number;
  /** Longest simple line (`+`, `-`, `:`, `,`, `#`, `(`, `_` and headers). Default 64 KiB. */
  maxLineLength?: number;
}

/** Bit set of the RESP3 type bytes that open an aggregate. */
function isAggregate(type: number): boolean {
  // '*' array, '%' map, '~' set, '>' push, '|' attribute
  return type === 0x2a || type === 0x25 || type === 0x7e || type === 0x3e || type === 0x7c;
}

/**
 * Reads the decimal (optionally signed) integer in `buf[from, to)`; throws a
 * {@link RespProtocolError} on anything else. Integers beyond 2^53 lose precision here:
 * callers that care read the text (`(` big numbers always are).
 *
 * @example
 * ```ts
 * import { parseInteger } from "./scanner.ts";
 * console.log(parseInteger(new TextEncoder().encode(":-42"), 1, 4)); // -42
 * ```
 */
export function parseInteger(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  let negative = false;
  if (i < to && (buf[i] === 0x2d || buf[i] === 0x2b)) {
    negative = buf[i] === 0x2d;
    i++;
  }
  if (i >= to) throw new RespProtocolError("RESP_SYNTAX", "empty number");
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) throw new RespProtocolError("RESP_SYNTAX", "malformed number");
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

/**
 * Finds the end of complete replies in a byte stream, resumably.
 *
 * @example Bytes arriving in two pieces
 * ```ts
 * import { RespScanner } from "./scanner.ts";
 * const wire = new TextEncoder().encode("*2\r\n$3\r\nfoo\r\n:42\r\n");
 * const scanner = new RespScanner();
 * console.log(scanner.scan(wire, 0, 10)); // -1 (incomplete; progress kept)
 * console.log(scanner.scan(wire, 0, wire.length)); // 18 (the reply ends there)
 * ```
 */
export class RespScanner {
  /** The limits in force, defaults filled in. */
  readonly limits: Readonly<Required<RespLimits>>;
  /** Where the next unread header starts, relative to the reply's start. */
  #offset = 0;
  #depth = 0;
  /** Elements still to come in each open aggregate. */
  readonly #remaining: Float64Array;

  /**
   * Creates a scanner.
   *
   * @param limits See {@link RespLimits}.
   */
  constructor(limits: RespLimits = {}) {
    this.limits = {
      maxBulkLength: limits.maxBulkLength ?? 512 * 1024 * 1024,
      maxAggregateLength: limits.maxAggregateLength ?? 1 << 24,
      maxDepth: limits.maxDepth ?? 32,
      maxLineLength: limits.maxLineLength ?? 64 * 1024,
    };
    this.#remaining = new Float64Array(this.limits.maxDepth);
  }

  /** True while a reply has been partly walked (a later `scan` resumes it). */
  get inProgress(): boolean {
    return this.#offset !== 0;
  }

  /** Forgets a partly walked reply (the connection was reset). */
  reset(): void {
    this.#offset = 0;
    this.#depth = 0;
  }

  /**
   * Looks for the end of the reply that starts at `start`, with `buf[start, end)` the bytes
   * received so far. Call it again with the same reply start (it may have moved to another
   * buffer or offset: progress is kept relative to it) and a larger `end` as bytes arrive.
   *
   * @returns The offset just past the complete reply (the scanner is then ready for the
   *   next one), or -1 when more bytes are needed.
   * @throws {RespProtocolError} On malformed input or a broken limit.
   */
  scan(buf: Uint8Array, start: number, end: number): number {
    const limits = this.limits;
    const remaining = this.#remaining;
    let p = start + this.#offset;
    let depth = this.#depth;
    for (;;) {
      if (p >= end) break;
      const type = buf[p];
      // The header line: type byte, text, CR LF.
      let cr = p + 1;
      const lineLimit = Math.min(end, p + 1 + limits.maxLineLength + 1);
      while (cr < lineLimit && buf[cr] !== CR) cr++;
      if (cr >= lineLimit || cr + 1 >= end) {
        if (end - p > limits.maxLineLength + 2) {
          throw new RespProtocolError("RESP_LIMIT", "line longer than maxLineLength");
        }
        break;
      }
      if (buf[cr + 1] !== LF) throw new RespProtocolError("RESP_SYNTAX", "CR not followed by LF");
      let next = cr + 2;
      let opened = false;
      switch (type) {
        case 0x2b: // '+' simple string
        case 0x2d: // '-' simple error
        case 0x28: // '(' big number
        case 0x2c: // ',' double
          break;
        case 0x3a: // ':' integer
          parseInteger(buf, p + 1, cr);
          break;
        case 0x5f: // '_' null
          if (cr !== p + 1) throw new RespProtocolError("RESP_SYNTAX", "null with content");
          break;
        case 0x23: // '#' boolean
          if (cr !== p + 2 || (buf[p + 1] !== 0x74 && buf[p + 1] !== 0x66)) {
            throw new RespProtocolError("RESP_SYNTAX", "malformed boolean");
          }
          break;
        case 0x24: // '$' bulk string
        case 0x21: // '!' blob error
        case 0x3d: { // '=' verbatim string
          if (buf[p + 1] === 0x3f) {
            throw new RespProtocolError("RESP_UNSUPPORTED", "streamed strings are not supported");
          }
          const len = parseInteger(buf, p + 1, cr);
          if (len === -1 && type === 0x24) break; // RESP2 null bulk string
          if (len < 0) throw new RespProtocolError("RESP_SYNTAX", "negative length");
          if (len > limits.maxBulkLength) {
            throw new RespProtocolError("RESP_LIMIT", `bulk string of ${len} bytes over the limit`);
          }
          next = cr + 2 + len + 2;
          if (next > end) {
            // Keep the header's position: re-reading one short line is cheaper than
            // remembering a half-received bulk string.
            this.#offset = p - start;
            this.#depth = depth;
            return -1;
          }
          if (buf[next - 2] !== CR || buf[next - 1] !== LF) {
            throw new RespProtocolError("RESP_SYNTAX", "bulk string not followed by CR LF");
          }
          break;
        }
        default: {
          if (!isAggregate(type)) {
            throw new RespProtocolError("RESP_SYNTAX", `unknown type byte 0x${type.toString(16)}`);
          }
          if (buf[p + 1] === 0x3f) {
            throw new RespProtocolError(
              "RESP_UNSUPPORTED",
              "streamed aggregates are not supported",
            );
          }
          const n = parseInteger(buf, p + 1, cr);
          if (n === -1 && (type === 0x2a || type === 0x3e)) break; // RESP2 null array
          if (n < 0) throw new RespProtocolError("RESP_SYNTAX", "negative aggregate length");
          // Maps and attributes hold n pairs; an attribute is followed by the value it
          // annotates, walked as one more element of it.
          const count = type === 0x25 ? 2 * n : type === 0x7c ? 2 * n + 1 : n;
          if (count > limits.maxAggregateLength) {
            throw new RespProtocolError(
              "RESP_LIMIT",
              `aggregate of ${count} elements over the limit`,
            );
          }
          if (count > 0) {
            if (depth >= limits.maxDepth) {
              throw new RespProtocolError("RESP_LIMIT", "aggregates nested deeper than maxDepth");
            }
            remaining[depth++] = count;
            opened = true;
          }
        }
      }
      p = next;
      if (opened) continue;
      // One value is complete: close every aggregate it completes.
      while (depth > 0 && --remaining[depth - 1] === 0) depth--;
      if (depth === 0) {
        this.#offset = 0;
        this.#depth = 0;
        return p;
      }
    }
    this.#offset = p - start;
    this.#depth = depth;
    return -1;
  }
}

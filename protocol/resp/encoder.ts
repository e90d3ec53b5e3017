/**
 * RESP command encoding. Commands always go to the server as an array of bulk strings
 * (RESP2 and RESP3 alike). Two levels:
 *
 * - {@link encodeCommand} builds one standalone command from its arguments (allocates;
 *   for the rare commands: AUTH, SELECT, SUBSCRIBE, XINFO...);
 * - the `write*` primitives write headers and bulk strings into a caller's buffer at an
 *   offset and return the new offset, so that a hot command (PUBLISH, XADD) is laid out
 *   directly in a connection's output buffer with its payload copied once.
 *
 * @module
 */

const CR = 13;
const LF = 10;
const utf8 = new TextEncoder();

/**
 * Number of decimal digits of a non-negative safe integer.
 *
 * @example
 * ```ts
 * import { decimalLength } from "./encoder.ts";
 * console.log(decimalLength(0), decimalLength(9), decimalLength(10), decimalLength(65536)); // 1 1 2 5
 * ```
 */
export function decimalLength(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

/**
 * Writes a non-negative safe integer in decimal at `at`; returns the offset after it.
 *
 * @example
 * ```ts
 * import { writeDecimal } from "./encoder.ts";
 * const buf = new Uint8Array(8);
 * const end = writeDecimal(buf, 0, 1234);
 * console.log(new TextDecoder().decode(buf.subarray(0, end))); // "1234"
 * ```
 */
export function writeDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  let i = end;
  do {
    const q = Math.floor(n / 10);
    buf[--i] = 48 + (n - q * 10);
    n = q;
  } while (n > 0);
  return end;
}

/**
 * Bytes taken by an array header `*<count>\r\n`.
 *
 * @example
 * ```ts
 * import { arrayHeaderSize } from "./encoder.ts";
 * console.log(arrayHeaderSize(3)); // 4 ("*3\r\n")
 * ```
 */
export function arrayHeaderSize(count: number): number {
  return decimalLength(count) + 3;
}

/**
 * Writes an array header `*<count>\r\n`; returns the offset after it.
 *
 * @example
 * ```ts
 * import { writeArrayHeader } from "./encoder.ts";
 * const buf = new Uint8Array(4);
 * console.log(writeArrayHeader(buf, 0, 3), buf[0] === 0x2a); // 4 true
 * ```
 */
export function writeArrayHeader(buf: Uint8Array, at: number, count: number): number {
  buf[at] = 0x2a; // '*'
  at = writeDecimal(buf, at + 1, count);
  buf[at] = CR;
  buf[at + 1] = LF;
  return at + 2;
}

/**
 * Bytes taken by a bulk string of `length` bytes: `$<length>\r\n<bytes>\r\n`.
 *
 * @example
 * ```ts
 * import { bulkSize } from "./encoder.ts";
 * console.log(bulkSize(7)); // 13 ("$7\r\nPUBLISH\r\n")
 * ```
 */
export function bulkSize(length: number): number {
  return decimalLength(length) + length + 5;
}

/**
 * Writes a bulk string header `$<length>\r\n`; the caller writes the `length` bytes and
 * then {@link writeCrlf}. Returns the offset after the header.
 *
 * @example A bulk string whose content is assembled in place
 * ```ts
 * import { writeBulkHeader, writeCrlf } from "./encoder.ts";
 * const buf = new Uint8Array(16);
 * let at = writeBulkHeader(buf, 0, 4);
 * buf.set([104, 105], at); // "hi"
 * buf.set([33, 33], at + 2); // "!!"
 * at = writeCrlf(buf, at + 4);
 * console.log(new TextDecoder().decode(buf.subarray(0, at)) === "$4\r\nhi!!\r\n"); // true
 * ```
 */
export function writeBulkHeader(buf: Uint8Array, at: number, length: number): number {
  buf[at] = 0x24; // '$'
  at = writeDecimal(buf, at + 1, length);
  buf[at] = CR;
  buf[at + 1] = LF;
  return at + 2;
}

/**
 * Writes CR LF; returns the offset after it.
 *
 * @example
 * ```ts
 * import { writeCrlf } from "./encoder.ts";
 * const buf = new Uint8Array(2);
 * console.log(writeCrlf(buf, 0), buf[0], buf[1]); // 2 13 10
 * ```
 */
export function writeCrlf(buf: Uint8Array, at: number): number {
  buf[at] = CR;
  buf[at + 1] = LF;
  return at + 2;
}

/**
 * Writes a whole bulk string; returns the offset after it.
 *
 * @example
 * ```ts
 * import { bulkSize, writeBulk } from "./encoder.ts";
 * const key = new TextEncoder().encode("fdws:room");
 * const buf = new Uint8Array(bulkSize(key.length));
 * console.log(writeBulk(buf, 0, key) === buf.length); // true
 * ```
 */
export function writeBulk(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  at = writeBulkHeader(buf, at, bytes.length);
  buf.set(bytes, at);
  return writeCrlf(buf, at + bytes.length);
}

/** A command argument: text is sent as UTF-8, numbers in decimal. */
export type CommandArg = string | number | Uint8Array;

/**
 * Encodes one command as an array of bulk strings, in a new buffer.
 *
 * @example
 * ```ts
 * import { encodeCommand } from "./encoder.ts";
 * const bytes = encodeCommand(["SELECT", 3]);
 * console.log(JSON.stringify(new TextDecoder().decode(bytes))); // "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
 * ```
 */
export function encodeCommand(args: readonly CommandArg[]): Uint8Array {
  const parts: Uint8Array[] = new Array(args.length);
  let size = arrayHeaderSize(args.length);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const bytes = a instanceof Uint8Array ? a : utf8.encode(typeof a === "number" ? String(a) : a);
    parts[i] = bytes;
    size += bulkSize(bytes.length);
  }
  const out = new Uint8Array(size);
  let at = writeArrayHeader(out, 0, args.length);
  for (const p of parts) at = writeBulk(out, at, p);
  return out;
}

/**
 * Reads the values of a complete RESP reply (one that {@link RespScanner} vouched for)
 * token by token, without allocating: each {@link RespCursor.next} leaves the token's type
 * and the position of its content in fields, and the caller compares or copies the bytes
 * it wants. This is how a pub/sub message or a stream entry is taken apart on the hot
 * path; {@link decodeReply} (value.ts) builds JavaScript values on top of it for the rare
 * replies.
 *
 * @module
 */

import { parseInteger } from "./scanner.ts";

const CR = 13;

/** RESP type bytes, as {@link RespCursor.type} reports them. */
export const RespType = {
  SIMPLE_STRING: 0x2b, // '+'
  SIMPLE_ERROR: 0x2d, // '-'
  INTEGER: 0x3a, // ':'
  BULK_STRING: 0x24, // '$'
  ARRAY: 0x2a, // '*'
  NULL: 0x5f, // '_'
  BOOLEAN: 0x23, // '#'
  DOUBLE: 0x2c, // ','
  BIG_NUMBER: 0x28, // '('
  BULK_ERROR: 0x21, // '!'
  VERBATIM_STRING: 0x3d, // '='
  MAP: 0x25, // '%'
  SET: 0x7e, // '~'
  PUSH: 0x3e, // '>'
  ATTRIBUTE: 0x7c, // '|'
} as const;

/**
 * A reader over one complete reply.
 *
 * After {@link RespCursor.next}:
 * - strings, errors, numbers as text: the content is `buf[start, start + length)`;
 * - a RESP2 null bulk string or null array: `length` is -1 (and `type` the `$` or `*`);
 * - an aggregate: `length` is its element count as sent (pairs for a map), and the
 *   following `next()` calls read its elements;
 * - an integer: `integer` holds its value (also for booleans: 1 or 0).
 *
 * Attributes (RESP3 `|`) are skipped: `next()` returns the value they annotate.
 *
 * @example A pub/sub message taken apart
 * ```ts
 * import { RespCursor } from "./cursor.ts";
 * const wire = new TextEncoder().encode("*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$2\r\nhi\r\n");
 * const c = new RespCursor();
 * c.reset(wire, 0, wire.length);
 * c.next(); // the array
 * console.log(c.length); // 3
 * c.next();
 * console.log(c.text()); // "message"
 * c.next();
 * console.log(c.text()); // "room"
 * c.next();
 * console.log(c.start, c.length); // 31 2
 * ```
 */
export class RespCursor {
  /** The buffer being read. */
  buf: Uint8Array = new Uint8Array(0);
  /** Offset of the next token. */
  pos = 0;
  /** End of the reply. */
  end = 0;
  /** Type byte of the last token (see {@link RespType}). */
  type = 0;
  /** Content offset of the last token. */
  start = 0;
  /** Content length of the last token, element count of an aggregate, -1 for a null. */
  length = 0;
  /** Value of the last integer or boolean token. */
  integer = 0;

  /** Points the cursor at the reply in `buf[start, end)`. */
  reset(buf: Uint8Array, start: number, end: number): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** True when every token of the reply was read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads the next token; returns its type byte. */
  next(): number {
    for (;;) {
      const buf = this.buf;
      const p = this.pos;
      const type = buf[p];
      let cr = p + 1;
      while (buf[cr] !== CR) cr++;
      this.type = type;
      this.start = p + 1;
      this.length = cr - p - 1;
      this.pos = cr + 2;
      switch (type) {
        case 0x3a: // ':'
          this.integer = parseInteger(buf, p + 1, cr);
          return type;
        case 0x23: // '#'
          this.integer = buf[p + 1] === 0x74 ? 1 : 0;
          return type;
        case 0x24: // '$'
        case 0x21: // '!'
        case 0x3d: { // '='
          const len = parseInteger(buf, p + 1, cr);
          this.start = cr + 2;
          this.length = len;
          if (len >= 0) this.pos = cr + 2 + len + 2;
          return type;
        }
        case 0x2a: // '*'
        case 0x25: // '%'
        case 0x7e: // '~'
        case 0x3e: // '>'
          this.length = parseInteger(buf, p + 1, cr);
          return type;
        case 0x7c: { // '|' attribute: skip its pairs, read what it annotates
          const pairs = parseInteger(buf, p + 1, cr);
          for (let i = 0; i < 2 * pairs; i++) this.skip();
          continue;
        }
        default:
          return type;
      }
    }
  }

  /** Reads and discards the next value, with all its elements. */
  skip(): void {
    this.next();
    this.skipElements();
  }

  /** After `next()` returned an aggregate: discards its elements. Otherwise does nothing. */
  skipElements(): void {
    const type = this.type;
    if (type !== 0x2a && type !== 0x25 && type !== 0x7e && type !== 0x3e) return;
    const n = this.length;
    const count = type === 0x25 ? 2 * n : n;
    for (let i = 0; i < count; i++) this.skip();
  }

  /** True when the last token's content equals `bytes`. */
  equals(bytes: Uint8Array): boolean {
    const len = this.length;
    if (len !== bytes.length) return false;
    const buf = this.buf;
    const s = this.start;
    for (let i = 0; i < len; i++) if (buf[s + i] !== bytes[i]) return false;
    return true;
  }

  /** True when the last token is a string (simple, bulk or verbatim) equal to `ascii`, any case. */
  is(ascii: string): boolean {
    const len = this.length;
    if (len !== ascii.length) return false;
    const buf = this.buf;
    const s = this.start;
    for (let i = 0; i < len; i++) {
      if ((buf[s + i] | 0x20) !== (ascii.charCodeAt(i) | 0x20)) return false;
    }
    return true;
  }

  /** The last token's content as UTF-8 text (allocates). */
  text(): string {
    if (this.length <= 0) return "";
    return decoder.decode(this.buf.subarray(this.start, this.start + this.length));
  }

  /** The last token's content as a view of the buffer (valid until the buffer is reused). */
  view(): Uint8Array {
    return this.buf.subarray(this.start, this.start + Math.max(0, this.length));
  }
}

const decoder = new TextDecoder();

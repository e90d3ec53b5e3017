/**
 * Decodes a complete RESP2/RESP3 reply into JavaScript values, for the replies that are
 * rare enough to afford objects (handshakes, XINFO, CLIENT LIST, tests). The hot path
 * reads replies with a {@link RespCursor} instead.
 *
 * | RESP                               | value                                  |
 * | ---------------------------------- | -------------------------------------- |
 * | simple string, bulk, verbatim      | `string` (UTF-8), or `Uint8Array` with `{ bytes: true }` |
 * | integer                            | `number`, `bigint` beyond 2^53         |
 * | big number                         | `bigint`                               |
 * | double                             | `number` (`inf`, `-inf`, `nan` too)    |
 * | boolean                            | `boolean`                              |
 * | null, null bulk, null array        | `null`                                 |
 * | array, set                         | `RespValue[]`                          |
 * | map                                | `Map<RespValue, RespValue>`            |
 * | push                               | {@link RespPush}                       |
 * | simple or blob error               | {@link RespError} (returned, not thrown) |
 * | attribute                          | skipped                                |
 *
 * @module
 */

import { RespCursor } from "./cursor.ts";
import { RespError } from "./errors.ts";

/**
 * An out-of-band message (RESP3 `>`): pub/sub messages, invalidations. `kind` is its
 * first element (`"message"`, `"smessage"`...) when that is a string.
 *
 * @example
 * ```ts
 * import { RespPush } from "./value.ts";
 * const push = new RespPush(["message", "room", "hi"]);
 * console.log(push.kind, push.items.length); // "message" 3
 * ```
 */
export class RespPush {
  /** The elements, the kind included. */
  readonly items: RespValue[];
  /** The first element when it is a string, else `""`. */
  readonly kind: string;

  /**
   * Wraps the elements of a push.
   *
   * @param items The decoded elements.
   */
  constructor(items: RespValue[]) {
    this.items = items;
    this.kind = typeof items[0] === "string" ? items[0] : "";
  }
}

/** A decoded RESP value (see the module's table). */
export type RespValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | RespError
  | RespPush
  | RespValue[]
  | Map<RespValue, RespValue>;

/**
 * Options of {@link decodeReply}.
 *
 * @example
 * ```ts
 * import type { DecodeOptions } from "./value.ts";
 * const raw: DecodeOptions = { bytes: true };
 * console.log(raw.bytes); // true
 * ```
 */
export interface DecodeOptions {
  /** Bulk and verbatim strings as `Uint8Array` copies instead of text. Default false. */
  bytes?: boolean;
}

const decoder = new TextDecoder();

/**
 * Decodes the complete reply in `buf[start, end)` (as bounded by {@link RespScanner}).
 *
 * @example
 * ```ts
 * import { decodeReply } from "./value.ts";
 * const wire = new TextEncoder().encode("%2\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n");
 * const hello = decodeReply(wire, 0, wire.length) as Map<string, unknown>;
 * console.log(hello.get("server"), hello.get("proto")); // "redis" 3
 * ```
 */
export function decodeReply(
  buf: Uint8Array,
  start: number,
  end: number,
  options: DecodeOptions = {},
): RespValue {
  const cursor = new RespCursor();
  cursor.reset(buf, start, end);
  return readValue(cursor, options.bytes === true);
}

function readValue(c: RespCursor, bytes: boolean): RespValue {
  const type = c.next();
  switch (type) {
    case 0x2b: // '+'
      return c.text();
    case 0x2d: // '-'
    case 0x21: // '!'
      return new RespError(c.text());
    case 0x3a: { // ':'
      if (Number.isSafeInteger(c.integer)) return c.integer;
      return BigInt(c.text());
    }
    case 0x28: // '('
      return BigInt(c.text());
    case 0x2c: { // ','
      const t = c.text().toLowerCase();
      if (t === "inf" || t === "+inf") return Infinity;
      if (t === "-inf") return -Infinity;
      if (t === "nan" || t === "-nan") return NaN;
      return Number(t);
    }
    case 0x23: // '#'
      return c.integer === 1;
    case 0x5f: // '_'
      return null;
    case 0x24: // '$'
      if (c.length < 0) return null;
      return bytes ? c.view().slice() : c.text();
    case 0x3d: { // '=' verbatim: "fmt:" then the text
      const v = c.view().subarray(Math.min(4, c.length));
      return bytes ? v.slice() : decoder.decode(v);
    }
    case 0x2a: // '*'
    case 0x7e: // '~'
    case 0x3e: { // '>'
      if (c.length < 0) return null;
      const n = c.length;
      const items: RespValue[] = new Array(n);
      for (let i = 0; i < n; i++) items[i] = readValue(c, bytes);
      return type === 0x3e ? new RespPush(items) : items;
    }
    case 0x25: { // '%'
      const n = c.length;
      const map = new Map<RespValue, RespValue>();
      for (let i = 0; i < n; i++) {
        const key = readValue(c, bytes);
        map.set(key, readValue(c, bytes));
      }
      return map;
    }
    default:
      return null;
  }
}

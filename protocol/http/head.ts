/**
 * Shared internals of the HTTP/1.1 head parsers and serializers: the incremental line
 * scanner with its byte limit, header-field parsing, header lists, token and list
 * helpers.
 *
 * The request parser ({@link ./http_request.ts}) and the response parser
 * ({@link ./http_response.ts}) differ only in their start line, so everything else
 * lives here once.
 *
 * @module
 */

import { HandshakeError } from "./handshake_error.ts";

/** HTTP versions the HTTP/1 parsers accept; later 1.x minors are reported as `"1.1"`. */
export type HttpVersion = "1.0" | "1.1";

/** Default limit, in bytes, of a request or response head (start line + fields + CRLFs). */
export const DEFAULT_MAX_HEADER_BYTES = 8192;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const DEL = 0x7f;

/** `TCHAR[b] === 1` when byte `b` is a token character (RFC 9110 §5.6.2). */
export const TCHAR: Uint8Array = (() => {
  const table = new Uint8Array(256);
  const chars = "!#$%&'*+-.^_`|~0123456789" +
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
})();

/**
 * Reports whether `s` is a non-empty RFC 9110 token (method, header name, subprotocol).
 *
 * @example
 * ```ts
 * import { isToken } from "./head.ts";
 *
 * console.log(isToken("chat.v2"), isToken("a b"), isToken(""));
 * ```
 *
 * @param s Candidate string.
 * @returns `true` for a token.
 */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TCHAR[c] !== 1) return false;
  }
  return true;
}

/**
 * Reports whether a comma-separated header value contains `token`, compared ASCII
 * case-insensitively after trimming optional whitespace. Scans in place so that the
 * per-connection checks (`Connection`, `Upgrade`) allocate nothing.
 *
 * @example
 * ```ts
 * import { listHasToken } from "./head.ts";
 *
 * console.log(listHasToken("keep-alive, Upgrade", "upgrade")); // true
 * ```
 *
 * @param value Header value, or `null` when the header is absent.
 * @param token Lowercase token to look for.
 * @returns `true` when one list element equals `token`.
 */
export function listHasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  const n = value.length;
  let i = 0;
  while (i <= n) {
    let comma = value.indexOf(",", i);
    if (comma === -1) comma = n;
    let s = i;
    let e = comma;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (e - s === token.length && equalsLowerAt(value, s, token)) return true;
    i = comma + 1;
  }
  return false;
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

function equalsLowerAt(value: string, at: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    let c = value.charCodeAt(at + k);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * Splits a comma-separated header value into trimmed, non-empty elements. Commas inside
 * quoted strings (extension parameters may carry them) do not split.
 *
 * @example
 * ```ts
 * import { splitList } from "./head.ts";
 *
 * console.log(splitList(`chat, , superchat`)); // ["chat", "superchat"]
 * ```
 *
 * @param value Header value.
 * @returns The list elements, in order.
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= value.length; i++) {
    const c = i < value.length ? value.charCodeAt(i) : 0x2c;
    if (quoted) {
      if (c === 0x5c) i++; // quoted-pair: the next char is literal
      else if (c === 0x22) quoted = false;
      continue;
    }
    if (c === 0x22) quoted = true;
    else if (c === 0x2c) {
      const item = trimOws(value.slice(start, i));
      if (item !== "") out.push(item);
      start = i + 1;
    }
  }
  return out;
}

/**
 * Removes leading and trailing spaces and tabs (RFC 9110 OWS), and nothing else:
 * `String.prototype.trim` would also strip CR, LF and Unicode spaces.
 *
 * @example
 * ```ts
 * import { trimOws } from "./head.ts";
 *
 * console.log(JSON.stringify(trimOws(" \tvalue \t"))); // "value"
 * ```
 *
 * @param s Input string.
 * @returns `s` without surrounding OWS.
 */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** One header field: lowercase name and value with surrounding whitespace removed. */
export type HeaderField = readonly [name: string, value: string];

/**
 * Ordered header fields of a parsed message, with case-insensitive lookups. Base of
 * `ParsedRequest` and `ParsedResponse`.
 *
 * @example
 * ```ts
 * import { HeaderList } from "./head.ts";
 *
 * const h = new HeaderList([["accept", "a/b"], ["Accept", "c/d"]]);
 * console.log(h.get("ACCEPT")); // "a/b, c/d"
 * console.log(h.getAll("accept")); // ["a/b", "c/d"]
 * ```
 */
export class HeaderList {
  /** The fields in the order received; names are lowercase. */
  readonly headers: readonly HeaderField[];

  /**
   * Wraps header fields.
   *
   * @param headers Fields in order. Names are lowercased if they are not already; the
   * array is used as is (not copied) when every name is lowercase.
   */
  constructor(headers: readonly HeaderField[]) {
    let lower = true;
    for (let i = 0; i < headers.length && lower; i++) {
      const name = headers[i][0];
      for (let k = 0; k < name.length; k++) {
        const c = name.charCodeAt(k);
        if (c >= 0x41 && c <= 0x5a) {
          lower = false;
          break;
        }
      }
    }
    this.headers = lower ? headers : headers.map(([n, v]) => [n.toLowerCase(), v] as const);
  }

  /**
   * The value of a field, with repeated lines joined by `", "` as RFC 9110 §5.3 allows
   * for list-based fields; `null` when absent.
   *
   * @param name Field name, any case.
   * @returns The combined value or `null`.
   */
  get(name: string): string | null {
    const key = name.toLowerCase();
    let out: string | null = null;
    // Indexed loops: array destructuring in for-of allocates iterators until the function
    // is optimized, and each handshake runs these a few times.
    const headers = this.headers;
    for (let i = 0; i < headers.length; i++) {
      const field = headers[i];
      if (field[0] === key) out = out === null ? field[1] : `${out}, ${field[1]}`;
    }
    return out;
  }

  /**
   * The values of every line of a field, in order.
   *
   * @param name Field name, any case.
   * @returns The values, possibly empty.
   */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const out: string[] = [];
    const headers = this.headers;
    for (let i = 0; i < headers.length; i++) if (headers[i][0] === key) out.push(headers[i][1]);
    return out;
  }

  /**
   * Whether at least one line of the field is present.
   *
   * @param name Field name, any case.
   * @returns `true` when present.
   */
  has(name: string): boolean {
    const key = name.toLowerCase();
    const headers = this.headers;
    for (let i = 0; i < headers.length; i++) if (headers[i][0] === key) return true;
    return false;
  }
  /**
   * The fields as one string, one `name:value` per line, leaving out the names in `skip`:
   * the compact form a connection keeps for its whole life (an array of pairs costs
   * several objects per field).
   *
   * @example
   * ```ts
   * import { HeaderList } from "./head.ts";
   *
   * console.log(new HeaderList([["Origin", "https://a.test"]]).text()); // "origin:https://a.test"
   * ```
   */
  text(skip?: ReadonlySet<string>): string {
    let out = "";
    const headers = this.headers;
    for (let i = 0; i < headers.length; i++) {
      const n = headers[i][0];
      if (skip !== undefined && skip.has(n)) continue;
      out += out === "" ? `${n}:${headers[i][1]}` : `\n${n}:${headers[i][1]}`;
    }
    return out;
  }
}

/** A parse failure: the HTTP status a server would answer with, and why. */
export interface HeadError {
  /** 400 malformed, 431 head too large, 505 unsupported HTTP major version. */
  readonly status: 400 | 431 | 505;
  /** Human-readable reason. */
  readonly message: string;
}

/**
 * Parses a start line held in `bytes[from, to)` (CRLF excluded); returns an error or
 * `null`. Called as soon as the line is complete so that garbage is refused early.
 */
export type StartLineHandler = (bytes: Uint8Array, from: number, to: number) => HeadError | null;

/** {@linkcode HeadScanner.push} result: the head is not finished yet. */
export const SCAN_INCOMPLETE: -1 = -1;
/** {@linkcode HeadScanner.push} result: the head is invalid; see `error`. */
export const SCAN_ERROR: -2 = -2;

const asciiDecoder = new TextDecoder();

/**
 * Decodes `bytes[from, to)` as ISO-8859-1 (each byte to the code point of the same
 * value). `TextDecoder("latin1")` is not usable: WHATWG maps that label to
 * windows-1252, which turns 0x80–0x9F into other code points.
 *
 * @example
 * ```ts
 * import { decodeLatin1 } from "./head.ts";
 *
 * console.log(decodeLatin1(Uint8Array.of(0x63, 0x61, 0x66, 0xe9), 0, 4)); // "café"
 * ```
 *
 * @param bytes Source bytes.
 * @param from First index.
 * @param to End index (exclusive).
 * @returns The decoded string.
 */
export function decodeLatin1(bytes: Uint8Array, from: number, to: number): string {
  // Short strings (most names and values) and non-ASCII ones: a loop beats the
  // decoder's per-call overhead, and is the only exact latin1 path anyway.
  let ascii = to - from > 16;
  for (let i = from; ascii && i < to; i++) if (bytes[i] >= 0x80) ascii = false;
  if (ascii) return asciiDecoder.decode(bytes.subarray(from, to));
  // Byte values are the code points (ISO-8859-1). One call per 4 KiB slice instead of one
  // string per byte: half the time and garbage of `+=` for a typical header value.
  let s = "";
  for (let i = from; i < to; i += 4096) {
    const slice = bytes.subarray(i, Math.min(to, i + 4096));
    s += String.fromCharCode.apply(null, slice as unknown as number[]);
  }
  return s;
}

const asciiEncoder = new TextEncoder();

/**
 * Encodes a string whose code points are all below 0x100 as ISO-8859-1 into a new
 * array, leaving `extra` bytes free at the end (for a body). Callers validate the input
 * first; code points above 0xFF would be truncated.
 *
 * @example
 * ```ts
 * import { encodeLatin1 } from "./head.ts";
 *
 * console.log(encodeLatin1("é", 0)); // Uint8Array [ 233 ]
 * ```
 *
 * @param s String to encode.
 * @param extra Number of zero bytes to append.
 * @returns The encoded bytes.
 */
export function encodeLatin1(s: string, extra: number): Uint8Array {
  const out = new Uint8Array(s.length + extra);
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) asciiEncoder.encodeInto(s, out);
  else for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * Incremental splitter and validator of an HTTP/1.1 message head: start line (handed to
 * a callback), header fields and the terminating empty line. Independent of chunking:
 * every check happens at a fixed byte position of the stream, so the same bytes give
 * the same result whether they arrive at once or one at a time.
 *
 * Only the current incomplete line is kept between calls, and at most `maxBytes` bytes
 * of head are ever looked at: once that many bytes have gone by without the head
 * ending, the result is a 431 error.
 *
 * @example Used by the request and response parsers
 * ```ts
 * import { HeadScanner, SCAN_INCOMPLETE } from "./head.ts";
 *
 * const scanner = new HeadScanner(8192, 0, () => null);
 * const bytes = new TextEncoder().encode("START\r\nA: b\r\n\r\nrest");
 * const consumed = scanner.push(bytes, 0, bytes.length);
 * console.log(consumed !== SCAN_INCOMPLETE, consumed, scanner.takeFields());
 * ```
 */
export class HeadScanner {
  readonly #max: number;
  readonly #maxEmpty: number;
  readonly #onStart: StartLineHandler;
  /** Bytes of the current line seen in earlier chunks (grown on demand up to #max). */
  #line: Uint8Array | null = null;
  #lineLen = 0;
  /** Bytes of the current head seen so far, pending line included. */
  #seen = 0;
  /** The last byte seen was a CR, so the next must be LF. */
  #cr = false;
  #started = false;
  #empty = 0;
  #fields: HeaderField[] = [];
  #error: HeadError | null = null;
  /**
   * During a push that holds a whole ASCII head from its first byte (nearly every request
   * and response): the head decoded once, and where it starts in that push's buffer.
   * Names and values are slices of it: one decode per head instead of one per value,
   * which was most of the garbage a handshake left.
   */
  #text: string | null = null;
  #textBuf: Uint8Array | null = null;
  #textFrom = 0;

  /**
   * Creates a scanner for one connection.
   *
   * @param maxBytes Largest accepted head, CRLFs included.
   * @param maxEmptyLines Empty lines tolerated before the start line.
   * @param onStart Start-line parser.
   */
  constructor(maxBytes: number, maxEmptyLines: number, onStart: StartLineHandler) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 16) {
      throw new HandshakeError(
        "INVALID_OPTION",
        `maxHeaderBytes must be an integer >= 16, got ${maxBytes}`,
      );
    }
    this.#max = maxBytes;
    this.#maxEmpty = maxEmptyLines;
    this.#onStart = onStart;
  }

  /** The failure once {@linkcode HeadScanner.push} returned {@linkcode SCAN_ERROR}. */
  get error(): HeadError | null {
    return this.#error;
  }

  /**
   * Feeds `buf[start, end)`.
   *
   * @param buf Buffer holding the bytes.
   * @param start First index to read.
   * @param end End index (exclusive).
   * @returns The number of bytes of this chunk that completed the head,
   * {@linkcode SCAN_INCOMPLETE} or {@linkcode SCAN_ERROR}.
   */
  push(buf: Uint8Array, start: number, end: number): number {
    if (this.#error !== null) return SCAN_ERROR;
    if (this.#seen === 0 && this.#lineLen === 0 && !this.#started) {
      this.#decodeWhole(buf, start, end);
    }
    const n = this.#scan(buf, start, end);
    this.#text = null;
    this.#textBuf = null;
    return n;
  }

  /**
   * The string of `arr[from, to)`, a slice of the head decoded at once when `arr` is the
   * buffer of that push (for the start-line handler too).
   *
   * @param arr The bytes a field or start line was found in.
   * @param from First index.
   * @param to End index (exclusive).
   * @returns The decoded (ISO-8859-1) string.
   */
  decode(arr: Uint8Array, from: number, to: number): string {
    const text = this.#text;
    if (text !== null && arr === this.#textBuf) {
      return text.slice(from - this.#textFrom, to - this.#textFrom);
    }
    return decodeLatin1(arr, from, to);
  }

  /** Decodes `buf[start, ...)` at once when it holds a whole ASCII head within the limit. */
  #decodeWhole(buf: Uint8Array, start: number, end: number): void {
    const stop = Math.min(end, start + this.#max) - 3;
    for (let i = start; i < stop; i++) {
      const b = buf[i];
      if (b >= 0x80) return;
      if (b === CR && buf[i + 1] === LF && buf[i + 2] === CR && buf[i + 3] === LF) {
        if (i === start) return;
        this.#text = asciiDecoder.decode(buf.subarray(start, i));
        this.#textBuf = buf;
        this.#textFrom = start;
        return;
      }
    }
  }

  #scan(buf: Uint8Array, start: number, end: number): number {
    let lineStart = start;
    let cr = this.#cr;
    const budget = this.#max - this.#seen;
    const stop = end - start > budget ? start + budget : end;
    for (let i = start; i < stop; i++) {
      const b = buf[i];
      if (b > 0x1f && b !== DEL) {
        if (cr) return this.fail(400, "bare CR in message head");
        continue;
      }
      if (b === LF) {
        if (!cr) return this.fail(400, "bare LF in message head: lines must end with CRLF");
        cr = false;
        let arr: Uint8Array;
        let to: number;
        let from = lineStart;
        if (this.#lineLen > 0) {
          arr = this.#append(buf, lineStart, i);
          from = 0;
          to = this.#lineLen - 1;
          this.#lineLen = 0;
        } else {
          arr = buf;
          to = i - 1;
        }
        this.#seen += i + 1 - lineStart;
        lineStart = i + 1;
        if (from === to) {
          if (this.#started) {
            this.#cr = false;
            this.#seen = 0;
            // Most connections parse one head: do not hold the line buffer for their life.
            this.#line = null;
            return lineStart - start;
          }
          if (++this.#empty > this.#maxEmpty) {
            return this.fail(400, "unexpected empty line before the start line");
          }
          continue;
        }
        const err = this.#started ? this.#field(arr, from, to) : this.#onStart(arr, from, to);
        this.#started = true;
        if (err !== null) return this.fail(err.status, err.message);
        continue;
      }
      if (b === CR) {
        if (cr) return this.fail(400, "bare CR in message head");
        cr = true;
      } else if (b !== HTAB || cr) {
        return this.fail(
          400,
          cr
            ? "bare CR in message head"
            : `control character 0x${b.toString(16).padStart(2, "0")} in message head`,
        );
      }
    }
    this.#cr = cr;
    if (stop > lineStart) this.#append(buf, lineStart, stop);
    this.#seen += stop - lineStart;
    if (this.#seen >= this.#max) {
      return this.fail(431, `message head larger than ${this.#max} bytes`);
    }
    return SCAN_INCOMPLETE;
  }

  /**
   * Returns the fields of the head that just completed and readies the scanner for the
   * next head on the same connection.
   *
   * @returns The fields, in order, names lowercase.
   */
  takeFields(): HeaderField[] {
    const fields = this.#fields;
    this.#fields = [];
    this.#started = false;
    this.#empty = 0;
    return fields;
  }

  /**
   * Puts the scanner in the failed state (sticky until {@linkcode HeadScanner.reset}).
   *
   * @param status HTTP status a server would reply with.
   * @param message Reason.
   * @returns {@linkcode SCAN_ERROR}.
   */
  fail(status: 400 | 431 | 505, message: string): number {
    this.#error = { status, message };
    this.#line = null;
    this.#lineLen = 0;
    return SCAN_ERROR;
  }

  /** Forgets all state, including a failure. */
  reset(): void {
    this.#line = null;
    this.#lineLen = 0;
    this.#seen = 0;
    this.#cr = false;
    this.#started = false;
    this.#empty = 0;
    this.#fields = [];
    this.#error = null;
  }

  #append(buf: Uint8Array, from: number, to: number): Uint8Array {
    const need = this.#lineLen + (to - from);
    let line = this.#line;
    if (line === null || line.length < need) {
      let cap = line === null ? 256 : line.length * 2;
      while (cap < need) cap *= 2;
      const grown = new Uint8Array(Math.min(cap, this.#max));
      if (line !== null) grown.set(line.subarray(0, this.#lineLen));
      line = this.#line = grown;
    }
    line.set(buf.subarray(from, to), this.#lineLen);
    this.#lineLen = need;
    return line;
  }

  #field(arr: Uint8Array, from: number, to: number): HeadError | null {
    const first = arr[from];
    if (first === SP || first === HTAB) {
      return {
        status: 400,
        message: this.#fields.length === 0
          ? "whitespace between the start line and the first header field"
          : "obsolete line folding (obs-fold) is not allowed",
      };
    }
    let j = from;
    let upper = false;
    while (j < to) {
      const c = arr[j];
      if (TCHAR[c] !== 1) break;
      if (c >= 0x41 && c <= 0x5a) upper = true;
      j++;
    }
    if (j === to) return { status: 400, message: "header field line without a colon" };
    const c = arr[j];
    if (c !== COLON) {
      return {
        status: 400,
        message: c === SP || c === HTAB
          ? "whitespace between header field name and colon"
          : "invalid character in header field name",
      };
    }
    if (j === from) return { status: 400, message: "empty header field name" };
    let name = knownName(arr, from, j);
    if (name === null) {
      name = this.decode(arr, from, j);
      if (upper) name = name.toLowerCase();
    }
    let s = j + 1;
    let e = to;
    while (s < e && (arr[s] === SP || arr[s] === HTAB)) s++;
    while (e > s && (arr[e - 1] === SP || arr[e - 1] === HTAB)) e--;
    this.#fields.push([name, this.decode(arr, s, e)]);
    return null;
  }
}

/**
 * Names of the fields every handshake or browser request carries, by length, so that
 * the parser can return a shared string instead of decoding and lowercasing each time.
 */
const KNOWN_NAMES: ReadonlyArray<readonly string[] | undefined> = (() => {
  const names = [
    "host",
    "upgrade",
    "connection",
    "origin",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "pragma",
    "cookie",
    "authorization",
    "content-type",
    "content-length",
    "transfer-encoding",
    "date",
    "server",
    "set-cookie",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
  ];
  const byLength: string[][] = [];
  for (const n of names) (byLength[n.length] ??= []).push(n);
  return byLength;
})();

/** The shared lowercase string for a well-known name in `arr[from, to)`, or `null`. */
function knownName(arr: Uint8Array, from: number, to: number): string | null {
  const candidates = KNOWN_NAMES[to - from];
  if (candidates === undefined) return null;
  outer: for (const name of candidates) {
    for (let k = 0; k < name.length; k++) {
      let c = arr[from + k];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c !== name.charCodeAt(k)) continue outer;
    }
    return name;
  }
  return null;
}

/**
 * Validates a `Host` value (RFC 9110 §7.2: `uri-host [ ":" port ]`): a bracketed IP
 * literal or a reg-name, then an optional all-digit port. Empty is valid (RFC 9112
 * §3.2 requires an empty Host when the target has no authority).
 *
 * @example
 * ```ts
 * import { isValidHost } from "./head.ts";
 *
 * console.log(isValidHost("[::1]:8080"), isValidHost("a/b"), isValidHost("x@y"));
 * ```
 *
 * @param host Candidate Host value.
 * @param requirePort Whether a non-empty port is mandatory (authority-form targets).
 * @returns `true` when well-formed.
 */
export function isValidHost(host: string, requirePort = false): boolean {
  const n = host.length;
  let i = 0;
  if (n > 0 && host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf("]");
    if (close < 2 || !isIpLiteral(host, 1, close)) return false;
    i = close + 1;
  } else {
    while (i < n) {
      const c = host.charCodeAt(i);
      if (c === 0x3a) break;
      if (c === 0x25) {
        if (i + 2 >= n || !isHex(host.charCodeAt(i + 1)) || !isHex(host.charCodeAt(i + 2))) {
          return false;
        }
        i += 3;
        continue;
      }
      if (!isUnreserved(c) && !isSubDelim(c)) return false;
      i++;
    }
    if (i === 0 && n > 0) return false; // ":80" has no host
  }
  if (i === n) return !requirePort;
  if (host.charCodeAt(i) !== 0x3a) return false;
  i++;
  if (requirePort && i === n) return false;
  for (; i < n; i++) {
    const c = host.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * RFC 3986 §3.2.2: the inside of an IP-literal, `IPv6address / IPvFuture`, in s[from, to).
 * A bracketed host that is neither is not a host (RFC 9112 §3.2: 400 for an invalid Host).
 */
function isIpLiteral(s: string, from: number, to: number): boolean {
  if ((s.charCodeAt(from) | 0x20) !== 0x76) return isIPv6(s, from, to);
  // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
  let i = from + 1;
  while (i < to && isHex(s.charCodeAt(i))) i++;
  if (i === from + 1 || i >= to - 1 || s.charCodeAt(i) !== 0x2e) return false;
  for (i++; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!(isUnreserved(c) || isSubDelim(c) || c === 0x3a)) return false;
  }
  return true;
}

/**
 * IPv6address: eight groups of 1-4 hex digits separated by ":", one "::" standing for one or
 * more zero groups, the last two groups possibly written as an IPv4 address.
 */
function isIPv6(s: string, from: number, to: number): boolean {
  let groups = 0;
  let compressed = false;
  let i = from;
  if (s.charCodeAt(i) === 0x3a) {
    if (s.charCodeAt(i + 1) !== 0x3a) return false;
    compressed = true;
    i += 2;
    if (i === to) return true;
  }
  for (;;) {
    let j = i;
    while (j < to && j - i < 5 && isHex(s.charCodeAt(j))) j++;
    if (j < to && s.charCodeAt(j) === 0x2e) {
      if (!isIPv4(s, i, to)) return false;
      groups += 2;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups++;
    if (j === to) break;
    if (s.charCodeAt(j) !== 0x3a) return false;
    if (s.charCodeAt(j + 1) === 0x3a) {
      if (compressed) return false;
      compressed = true;
      i = j + 2;
      if (i === to) break;
    } else {
      i = j + 1;
      if (i === to) return false;
    }
  }
  return compressed ? groups <= 7 : groups === 8;
}

/** IPv4address: four dec-octets (0-255, no leading zero) separated by ".", in s[from, to). */
function isIPv4(s: string, from: number, to: number): boolean {
  let parts = 0;
  let i = from;
  for (;;) {
    const start = i;
    let value = 0;
    while (i < to && i - start < 3) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + c - 0x30;
      i++;
    }
    if (i === start || value > 255 || (i - start > 1 && s.charCodeAt(start) === 0x30)) {
      return false;
    }
    parts++;
    if (i === to) return parts === 4;
    if (s.charCodeAt(i) !== 0x2e || parts === 4) return false;
    i++;
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function isUnreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

function isSubDelim(c: number): boolean {
  // ! $ & ' ( ) * + , ; =
  return c === 0x21 || c === 0x24 || (c >= 0x26 && c <= 0x2c) || c === 0x3b || c === 0x3d;
}

/**
 * Validates caller-supplied headers for serialization and returns them as pairs,
 * original case kept. Refuses CR, LF and NUL anywhere (header injection), non-token
 * names, other control characters or code points above 0xFF in values, and names in
 * `reserved` (lowercase) that the caller must not override.
 *
 * @example
 * ```ts
 * import { validateHeaders } from "./head.ts";
 *
 * console.log(validateHeaders({ "X-Id": " 42 " }, new Set(["connection"])));
 * // [["X-Id", "42"]]
 * ```
 *
 * @param init Headers in any `HeadersInit` shape, or `undefined`.
 * @param reserved Lowercase names that are refused.
 * @returns Name/value pairs, values trimmed of surrounding spaces and tabs.
 * @throws {HandshakeError} `HEADER_INJECTION`, `INVALID_HEADER` or `RESERVED_HEADER`.
 */
export function validateHeaders(
  init: HeadersInit | undefined,
  reserved: ReadonlySet<string>,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (init === undefined) return out;
  const entries: Iterable<readonly string[]> = init instanceof Headers
    ? init
    : Symbol.iterator in init
    ? init as Iterable<string[]>
    : Object.entries(init as Record<string, string>);
  for (const entry of entries) {
    if (entry.length !== 2) {
      throw new HandshakeError("INVALID_HEADER", "header entries must be [name, value] pairs");
    }
    const name = String(entry[0]);
    const value = String(entry[1]);
    if (hasInjection(name) || hasInjection(value)) {
      throw new HandshakeError(
        "HEADER_INJECTION",
        `header ${JSON.stringify(name)} contains CR, LF or NUL`,
      );
    }
    if (!isToken(name)) {
      throw new HandshakeError("INVALID_HEADER", `invalid header name ${JSON.stringify(name)}`);
    }
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if ((c < 0x20 && c !== HTAB) || c === DEL || c > 0xff) {
        throw new HandshakeError(
          "INVALID_HEADER",
          `invalid character U+${c.toString(16).padStart(4, "0")} in header ${name}`,
        );
      }
    }
    if (reserved.has(name.toLowerCase())) {
      throw new HandshakeError("RESERVED_HEADER", `header ${name} is set by the library`);
    }
    out.push([name, trimOws(value)]);
  }
  return out;
}

function hasInjection(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === CR || c === LF || c === 0) return true;
  }
  return false;
}

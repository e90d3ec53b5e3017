/**
 * Incremental, strict HTTP/1.1 response-head parser (RFC 9112) for the client side of
 * the WebSocket opening handshake. Shares its line scanner and field rules with the
 * request parser.
 *
 * @module
 */

import {
  DEFAULT_MAX_HEADER_BYTES,
  type HeaderField,
  HeaderList,
  type HeadError,
  HeadScanner,
  type HttpVersion,
  SCAN_ERROR,
  SCAN_INCOMPLETE,
} from "./head.ts";

export { type HeaderField, HeaderList } from "./head.ts";
export type { HttpVersion } from "./head.ts";

/** Options of {@linkcode HttpResponseParser}. */
export interface HttpResponseParserOptions {
  /** Largest accepted response head in bytes, CRLFs included. Default 8192. */
  maxHeaderBytes?: number;
}

/** What {@linkcode HttpResponseParser.push} found. */
export type ResponseParseResult =
  | { readonly kind: "incomplete" }
  | {
    readonly kind: "complete";
    /** The parsed head. */
    readonly response: ParsedResponse;
    /**
     * Bytes of the pushed chunk that belong to the head; the rest (from
     * `start + consumed`) is body or WebSocket frames.
     */
    readonly consumed: number;
  }
  | {
    readonly kind: "error";
    /** Whether the failure is the size limit rather than malformed bytes. */
    readonly tooLarge: boolean;
    /** Human-readable reason. */
    readonly message: string;
  };

/** Fields of a {@linkcode ParsedResponse}. */
export interface ParsedResponseInit {
  /** HTTP version of the status line. */
  version: HttpVersion;
  /** Status code, 100–599. */
  status: number;
  /** Reason phrase, possibly empty. */
  reason: string;
  /** Header fields in order; names are lowercased if needed. */
  headers: readonly HeaderField[];
}

/**
 * A parsed response head. Header lookups are case-insensitive.
 *
 * @example
 * ```ts
 * import { ParsedResponse } from "./response.ts";
 *
 * const res = new ParsedResponse({
 *   version: "1.1",
 *   status: 101,
 *   reason: "Switching Protocols",
 *   headers: [["upgrade", "websocket"]],
 * });
 * console.log(res.status, res.get("Upgrade"));
 * ```
 */
export class ParsedResponse extends HeaderList {
  /** HTTP version; HTTP/1.x with x ≥ 1 is reported as `"1.1"`. */
  readonly version: HttpVersion;
  /** Status code, 100–599. */
  readonly status: number;
  /** Reason phrase (informational only, RFC 9112 §4). */
  readonly reason: string;

  /**
   * Creates a response head; the parser does this, tests and tools may too.
   *
   * @param init The status line parts and fields.
   */
  constructor(init: ParsedResponseInit) {
    super(init.headers);
    this.version = init.version;
    this.status = init.status;
    this.reason = init.reason;
  }
}

const INCOMPLETE: ResponseParseResult = Object.freeze({ kind: "incomplete" });

/**
 * Incremental strict parser of an HTTP/1.1 response head. Same chunking independence,
 * size limit and field rules as `HttpRequestParser`, with two differences: no empty line
 * is tolerated before the status line, and a status line without the space and reason
 * phrase (`HTTP/1.1 101`) is accepted, since the reason carries no meaning and some
 * servers omit it.
 *
 * @example
 * ```ts
 * import { HttpResponseParser } from "./response.ts";
 *
 * const bytes = new TextEncoder().encode(
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00",
 * );
 * const result = new HttpResponseParser().push(bytes, 0, bytes.length);
 * if (result.kind === "complete") {
 *   console.log(result.response.status, bytes.length - result.consumed); // 101 2
 * }
 * ```
 */
export class HttpResponseParser {
  readonly #scanner: HeadScanner;
  #version: HttpVersion = "1.1";
  #status = 0;
  #reason = "";
  #error: ResponseParseResult | null = null;

  /**
   * Creates a parser for one connection.
   *
   * @param options Parser limits.
   * @throws {HandshakeError} `INVALID_OPTION` when `maxHeaderBytes` is not an integer ≥ 16.
   */
  constructor(options: HttpResponseParserOptions = {}) {
    this.#scanner = new HeadScanner(
      options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      0,
      (bytes, from, to) => this.#statusLine(bytes, from, to),
    );
  }

  /**
   * Feeds the bytes `buf[start, end)`.
   *
   * @param buf Buffer holding the bytes (not retained after the call).
   * @param start First index to read.
   * @param end End index (exclusive).
   * @returns `"incomplete"`, `"complete"` with the response and the bytes of this chunk
   * it used, or `"error"`.
   */
  push(buf: Uint8Array, start: number, end: number): ResponseParseResult {
    const n = this.#scanner.push(buf, start, end);
    if (n === SCAN_INCOMPLETE) return INCOMPLETE;
    if (n === SCAN_ERROR) {
      if (this.#error === null) {
        const e = this.#scanner.error!;
        this.#error = Object.freeze({
          kind: "error",
          tooLarge: e.status === 431,
          message: e.message,
        });
      }
      return this.#error;
    }
    const response = new ParsedResponse({
      version: this.#version,
      status: this.#status,
      reason: this.#reason,
      headers: this.#scanner.takeFields(),
    });
    return { kind: "complete", response, consumed: n };
  }

  /** Forgets everything, including a failure. */
  reset(): void {
    this.#scanner.reset();
    this.#error = null;
  }

  #statusLine(a: Uint8Array, from: number, to: number): HeadError | null {
    const len = to - from;
    const i = from;
    if (
      len < 12 || a[i] !== 0x48 || a[i + 1] !== 0x54 || a[i + 2] !== 0x54 ||
      a[i + 3] !== 0x50 || a[i + 4] !== 0x2f || !isDigit(a[i + 5]) || a[i + 6] !== 0x2e ||
      !isDigit(a[i + 7]) || a[i + 8] !== 0x20 || !isDigit(a[i + 9]) || !isDigit(a[i + 10]) ||
      !isDigit(a[i + 11]) || (len > 12 && a[i + 12] !== 0x20)
    ) {
      return { status: 400, message: "malformed status line" };
    }
    if (a[i + 5] !== 0x31) {
      return { status: 505, message: `unsupported version HTTP/${a[i + 5] - 0x30}` };
    }
    const status = (a[i + 9] - 0x30) * 100 + (a[i + 10] - 0x30) * 10 + (a[i + 11] - 0x30);
    if (status < 100 || status > 599) {
      return { status: 400, message: `status code ${status} out of range` };
    }
    this.#version = a[i + 7] === 0x30 ? "1.0" : "1.1";
    this.#status = status;
    this.#reason = len > 13 ? this.#scanner.decode(a, i + 13, to) : "";
    return null;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

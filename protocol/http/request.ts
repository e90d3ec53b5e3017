/**
 * Incremental, strict HTTP/1.1 request-head parser (RFC 9112) for the server side of the
 * opening handshake, plus helpers that interpret a parsed head: body framing, whether it
 * asks for a WebSocket upgrade, and conversion to a WHATWG `Request` for plain HTTP
 * handlers.
 *
 * Pure: no I/O. The caller reads bytes from its socket and pushes them in as they come.
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
  isValidHost,
  listHasToken,
  SCAN_ERROR,
  SCAN_INCOMPLETE,
  splitList,
  TCHAR,
  trimOws,
} from "./head.ts";
import { HandshakeError } from "./handshake_error.ts";

export { type HeaderField, HeaderList } from "./head.ts";
export type { HttpVersion } from "./head.ts";

/** Options of {@linkcode HttpRequestParser}. */
export interface HttpRequestParserOptions {
  /**
   * Largest accepted request head in bytes: request line, header lines, every CRLF and
   * the final empty line, plus any tolerated leading empty lines. Default 8192.
   */
  maxHeaderBytes?: number;
}

/** What {@linkcode HttpRequestParser.push} found. */
export type RequestParseResult =
  | { readonly kind: "incomplete" }
  | {
    readonly kind: "complete";
    /** The parsed head. */
    readonly request: ParsedRequest;
    /**
     * Bytes of the pushed chunk that belong to the head. The rest of the chunk (from
     * `start + consumed` to `end`) is body or WebSocket frames for the caller.
     */
    readonly consumed: number;
  }
  | {
    readonly kind: "error";
    /** Status to answer with: 400 malformed, 431 too large, 505 unsupported version. */
    readonly status: 400 | 431 | 505;
    /** Human-readable reason, safe to send back. */
    readonly message: string;
  };

/** Fields of a {@linkcode ParsedRequest}. */
export interface ParsedRequestInit {
  /** Request method, case preserved (methods are case-sensitive). */
  method: string;
  /** Request target exactly as received. */
  target: string;
  /** HTTP version. */
  version: HttpVersion;
  /** Header fields in order; names are lowercased if needed. */
  headers: readonly HeaderField[];
}

/**
 * A parsed request head. Header lookups are case-insensitive.
 *
 * @example
 * ```ts
 * import { ParsedRequest } from "./request.ts";
 *
 * const req = new ParsedRequest({
 *   method: "GET",
 *   target: "/chat",
 *   version: "1.1",
 *   headers: [["host", "example.com"], ["x-a", "1"], ["x-a", "2"]],
 * });
 * console.log(req.get("X-A"), req.getAll("x-a"), req.has("host"));
 * ```
 */
export class ParsedRequest extends HeaderList {
  /** Request method, case preserved. */
  readonly method: string;
  /** Request target exactly as received (origin-, absolute-, authority- or asterisk-form). */
  readonly target: string;
  /** HTTP version; HTTP/1.x with x ≥ 1 is reported as `"1.1"` (RFC 9110 §2.5). */
  readonly version: HttpVersion;

  /**
   * Creates a request head; the parser does this, tests and tools may too.
   *
   * @param init The request line parts and fields.
   */
  constructor(init: ParsedRequestInit) {
    super(init.headers);
    this.method = init.method;
    this.target = init.target;
    this.version = init.version;
  }
}

const INCOMPLETE: RequestParseResult = Object.freeze({ kind: "incomplete" });

/**
 * Incremental strict parser of an HTTP/1.1 request head.
 *
 * - Bytes may arrive in any chunking, down to one byte per call; only the current
 *   unfinished line is kept between calls.
 * - Once `maxHeaderBytes` bytes have gone by without the head ending, the result is a
 *   431 error at once, before any more byte is looked at.
 * - Up to two empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2);
 *   a third is a 400.
 * - HTTP/1.0 and 1.1 are accepted (later 1.x minors are treated as 1.1); another major
 *   version is a 505; a malformed version is a 400.
 * - Exactly one valid `Host` is required in HTTP/1.1 and at most one in HTTP/1.0.
 * - Every byte of the head must be visible ASCII, space, tab, or (in field values only)
 *   obs-text 0x80–0xFF; other control characters are a 400, not just NUL, CR and LF.
 * - After `"complete"` the parser is ready for the next request of the connection.
 *   After `"error"` it keeps returning the same error until {@linkcode reset}.
 *
 * @example Parse a head split over two reads
 * ```ts
 * import { HttpRequestParser } from "./request.ts";
 *
 * const parser = new HttpRequestParser();
 * const enc = new TextEncoder();
 * const a = enc.encode("GET /chat HTTP/1.1\r\nHo");
 * const b = enc.encode("st: example.com\r\n\r\n\x81\x00");
 * console.log(parser.push(a, 0, a.length).kind); // "incomplete"
 * const result = parser.push(b, 0, b.length);
 * if (result.kind === "complete") {
 *   console.log(result.request.target, result.consumed); // "/chat" 19
 * }
 * ```
 */
export class HttpRequestParser {
  readonly #scanner: HeadScanner;
  #method = "";
  #target = "";
  #version: HttpVersion = "1.1";
  #error: RequestParseResult | null = null;

  /**
   * Creates a parser for one connection.
   *
   * @param options Parser limits.
   * @throws {HandshakeError} `INVALID_OPTION` when `maxHeaderBytes` is not an integer ≥ 16.
   */
  constructor(options: HttpRequestParserOptions = {}) {
    this.#scanner = new HeadScanner(
      options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      2,
      (bytes, from, to) => this.#requestLine(bytes, from, to),
    );
  }

  /**
   * Feeds the bytes `buf[start, end)`.
   *
   * @param buf Buffer holding the bytes (not retained after the call).
   * @param start First index to read.
   * @param end End index (exclusive).
   * @returns `"incomplete"` (all bytes taken, need more), `"complete"` with the request
   * and how many bytes of this chunk it used, or `"error"` with the status to answer.
   */
  push(buf: Uint8Array, start: number, end: number): RequestParseResult {
    const n = this.#scanner.push(buf, start, end);
    if (n === SCAN_INCOMPLETE) return INCOMPLETE;
    if (n === SCAN_ERROR) return this.#errorResult();
    const headers = this.#scanner.takeFields();
    let hosts = 0;
    let host = "";
    for (let i = 0; i < headers.length; i++) {
      if (headers[i][0] === "host") {
        hosts++;
        host = headers[i][1];
      }
    }
    if (hosts > 1) {
      this.#scanner.fail(400, "more than one Host header field");
      return this.#errorResult();
    }
    if (hosts === 0 && this.#version === "1.1") {
      this.#scanner.fail(400, "missing Host header field");
      return this.#errorResult();
    }
    if (hosts === 1 && !isValidHost(host)) {
      this.#scanner.fail(400, "invalid Host header field");
      return this.#errorResult();
    }
    const request = new ParsedRequest({
      method: this.#method,
      target: this.#target,
      version: this.#version,
      headers,
    });
    return { kind: "complete", request, consumed: n };
  }

  /** Forgets everything, including a failure, to parse a new request from scratch. */
  reset(): void {
    this.#scanner.reset();
    this.#error = null;
  }

  #errorResult(): RequestParseResult {
    if (this.#error === null) {
      const e = this.#scanner.error!;
      this.#error = Object.freeze({ kind: "error", status: e.status, message: e.message });
    }
    return this.#error;
  }

  #requestLine(a: Uint8Array, from: number, to: number): HeadError | null {
    let i = from;
    while (i < to && TCHAR[a[i]] === 1) i++;
    if (i === from || i === to || a[i] !== 0x20) {
      return bad("malformed request line: expected a method token and a single space");
    }
    const methodEnd = i++;
    const targetStart = i;
    let hash = false;
    while (i < to) {
      const c = a[i];
      if (c <= 0x20 || c >= 0x7f) break;
      if (c === 0x23) hash = true;
      i++;
    }
    if (i === targetStart || i === to || a[i] !== 0x20) {
      return bad("malformed request line: expected a request-target and a single space");
    }
    const targetEnd = i++;
    if (
      to - i !== 8 || a[i] !== 0x48 || a[i + 1] !== 0x54 || a[i + 2] !== 0x54 ||
      a[i + 3] !== 0x50 || a[i + 4] !== 0x2f || !isDigit(a[i + 5]) || a[i + 6] !== 0x2e ||
      !isDigit(a[i + 7])
    ) {
      return bad("malformed request line: expected HTTP-version HTTP/x.y at the end");
    }
    const major = a[i + 5] - 0x30;
    if (major !== 1) {
      return {
        status: 505,
        message: `HTTP/${major}.${a[i + 7] - 0x30} is not supported; use HTTP/1.1`,
      };
    }
    if (hash) return bad("request-target must not contain a fragment");
    const scanner = this.#scanner;
    const method = scanner.decode(a, from, methodEnd);
    const target = scanner.decode(a, targetStart, targetEnd);
    const formError = checkTargetForm(method, target);
    if (formError !== null) return bad(formError);
    this.#method = method;
    this.#target = target;
    this.#version = a[i + 7] === 0x30 ? "1.0" : "1.1";
    return null;
  }
}

function bad(message: string): HeadError {
  return { status: 400, message };
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** RFC 9112 §3.2: which target form each method may use. */
function checkTargetForm(method: string, target: string): string | null {
  if (method === "CONNECT") {
    return isValidHost(target, true)
      ? null
      : "CONNECT requires an authority-form request-target (host:port)";
  }
  const c = target.charCodeAt(0);
  if (c === 0x2f) return null;
  if (target === "*") {
    return method === "OPTIONS" ? null : "asterisk-form request-target is only valid for OPTIONS";
  }
  return isAbsoluteForm(target) ? null : "request-target must be origin-form or absolute-form";
}

/** `scheme ":" ...` where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
function isAbsoluteForm(target: string): boolean {
  const colon = target.indexOf(":");
  if (colon < 1) return false;
  for (let i = 0; i < colon; i++) {
    const c = target.charCodeAt(i);
    const alpha = (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
    if (!alpha && (i === 0 || !(isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e))) {
      return false;
    }
  }
  return true;
}

/** How the body of a request is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  /** No body: neither Content-Length nor Transfer-Encoding, or `Content-Length: 0`. */
  | { readonly kind: "none" }
  /** A body of exactly `length` (> 0) bytes. */
  | { readonly kind: "length"; readonly length: number }
  /** A chunked body (Transfer-Encoding whose final coding is `chunked`). */
  | { readonly kind: "chunked" }
  /** Framing that cannot be trusted: the server must answer 400 and close. */
  | { readonly kind: "invalid"; readonly message: string };

const NO_BODY: BodyFraming = Object.freeze({ kind: "none" });

/**
 * Interprets `Content-Length` and `Transfer-Encoding` of a request strictly:
 *
 * - Content-Length must be digits; repeated identical values (`5, 5` or two lines) are
 *   allowed, differing ones are invalid.
 * - Transfer-Encoding with Content-Length, in HTTP/1.0, or whose final coding is not
 *   `chunked` (or with `chunked` twice) is invalid: these are request-smuggling vectors.
 *
 * @example
 * ```ts
 * import { bodyFraming, ParsedRequest } from "./request.ts";
 *
 * const req = new ParsedRequest({
 *   method: "POST",
 *   target: "/",
 *   version: "1.1",
 *   headers: [["host", "h"], ["content-length", "5"]],
 * });
 * console.log(bodyFraming(req)); // { kind: "length", length: 5 }
 * ```
 *
 * @param req Parsed request head.
 * @returns The framing.
 */
export function bodyFraming(req: ParsedRequest): BodyFraming {
  let te: string | null = null;
  let cl: string | null = null;
  const headers = req.headers;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    if (name === "transfer-encoding") te = te === null ? value : `${te}, ${value}`;
    else if (name === "content-length") cl = cl === null ? value : `${cl}, ${value}`;
  }
  if (te !== null) {
    if (cl !== null) return invalid("both Transfer-Encoding and Content-Length");
    if (req.version === "1.0") return invalid("Transfer-Encoding in an HTTP/1.0 request");
    const codings = splitList(te);
    for (let i = 0; i < codings.length; i++) {
      const semi = codings[i].indexOf(";");
      const name = trimOws(semi === -1 ? codings[i] : codings[i].slice(0, semi)).toLowerCase();
      const last = i === codings.length - 1;
      if ((name === "chunked") !== last) {
        return invalid("Transfer-Encoding must end with chunked, applied once");
      }
    }
    if (codings.length === 0) return invalid("empty Transfer-Encoding");
    return { kind: "chunked" };
  }
  if (cl === null) return NO_BODY;
  let length = -1;
  for (const part of cl.split(",")) {
    const s = trimOws(part);
    if (s === "") return invalid("empty Content-Length");
    for (let i = 0; i < s.length; i++) {
      if (!isDigit(s.charCodeAt(i))) return invalid("Content-Length is not a number");
    }
    const n = Number(s);
    if (!Number.isSafeInteger(n)) return invalid("Content-Length too large");
    if (length !== -1 && n !== length) return invalid("conflicting Content-Length values");
    length = n;
  }
  return length === 0 ? NO_BODY : { kind: "length", length };
}

function invalid(message: string): BodyFraming {
  return { kind: "invalid", message };
}

/**
 * Whether the request announces a body: `Content-Length` > 0, a malformed or
 * conflicting `Content-Length`, or any `Transfer-Encoding`.
 *
 * @example
 * ```ts
 * import { announcesBody, ParsedRequest } from "./request.ts";
 *
 * const req = new ParsedRequest({
 *   method: "GET",
 *   target: "/",
 *   version: "1.1",
 *   headers: [["host", "h"], ["content-length", "0"]],
 * });
 * console.log(announcesBody(req)); // false
 * ```
 *
 * @param req Parsed request head.
 * @returns `true` when the request has, or may have, a body.
 */
export function announcesBody(req: ParsedRequest): boolean {
  return bodyFraming(req).kind !== "none";
}

/**
 * Whether the request asks to switch to WebSocket: an `Upgrade` header whose comma list
 * contains the token `websocket` (case-insensitive). A request without it is plain HTTP,
 * not an error.
 *
 * @example
 * ```ts
 * import { isUpgradeRequest, ParsedRequest } from "./request.ts";
 *
 * const req = new ParsedRequest({
 *   method: "GET",
 *   target: "/",
 *   version: "1.1",
 *   headers: [["host", "h"], ["upgrade", "WebSocket"]],
 * });
 * console.log(isUpgradeRequest(req)); // true
 * ```
 *
 * @param req Parsed request head.
 * @returns `true` for a WebSocket upgrade request.
 */
export function isUpgradeRequest(req: ParsedRequest): boolean {
  const headers = req.headers;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i][0] === "upgrade" && listHasToken(headers[i][1], "websocket")) return true;
  }
  return false;
}

/** Address of the peer, attached to a `Request` by {@linkcode toRequest}. */
export interface RemoteAddr {
  /** Peer IP address. */
  readonly hostname: string;
  /** Peer port. */
  readonly port: number;
}

/** Options of {@linkcode toRequest}. */
export interface ToRequestOptions {
  /** Scheme of the URL for origin-form targets. Default `"http"`. */
  scheme?: "http" | "https";
  /** Peer address, retrievable from the request with {@linkcode requestRemote}. */
  remote?: RemoteAddr;
  /** Signal of the request, e.g. aborted when the connection closes. */
  signal?: AbortSignal;
}

const remotes = new WeakMap<Request, RemoteAddr>();

/**
 * Builds a WHATWG `Request` (without body) from a parsed head, for a `fetch`-style
 * handler. The URL comes from `Host` + target for origin-form targets, or from the
 * target alone for absolute-form ones (whose Host is then ignored, RFC 9112 §3.2.2).
 *
 * @example
 * ```ts
 * import { ParsedRequest, toRequest } from "./request.ts";
 *
 * const head = new ParsedRequest({
 *   method: "GET",
 *   target: "/a?b=1",
 *   version: "1.1",
 *   headers: [["host", "example.com:8080"]],
 * });
 * console.log(toRequest(head).url); // "http://example.com:8080/a?b=1"
 * ```
 *
 * @param req Parsed request head.
 * @param options Scheme, remote address and abort signal.
 * @returns A body-less `Request`.
 * @throws {HandshakeError} `INVALID_REQUEST_TARGET` when no URL can be built (missing or
 * bad Host, asterisk- or authority-form target, non-HTTP absolute URL), or
 * `UNSUPPORTED_METHOD` when `Request` refuses the method (CONNECT, TRACE, TRACK).
 */
export function toRequest(req: ParsedRequest, options: ToRequestOptions = {}): Request {
  const target = req.target;
  let url: URL;
  if (target.charCodeAt(0) === 0x2f) {
    const hosts = req.getAll("host");
    if (hosts.length !== 1 || hosts[0] === "" || !isValidHost(hosts[0])) {
      throw new HandshakeError(
        "INVALID_REQUEST_TARGET",
        "a request with an origin-form target needs exactly one non-empty, valid Host",
      );
    }
    url = parseUrl(`${options.scheme ?? "http"}://${hosts[0]}${target}`);
  } else if (req.method !== "CONNECT" && isAbsoluteForm(target)) {
    url = parseUrl(target);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new HandshakeError("INVALID_REQUEST_TARGET", `unsupported URL scheme ${url.protocol}`);
    }
  } else {
    throw new HandshakeError(
      "INVALID_REQUEST_TARGET",
      `request-target ${JSON.stringify(target)} cannot be represented as a URL`,
    );
  }
  const headers = new Headers();
  let request: Request;
  try {
    for (const [name, value] of req.headers) headers.append(name, value);
    request = new Request(url, { method: req.method, headers, signal: options.signal });
  } catch (cause) {
    throw new HandshakeError(
      "UNSUPPORTED_METHOD",
      `cannot build a Request for ${req.method}: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (options.remote !== undefined) remotes.set(request, options.remote);
  return request;
}

function parseUrl(s: string): URL {
  try {
    return new URL(s);
  } catch (cause) {
    throw new HandshakeError("INVALID_REQUEST_TARGET", `invalid URL ${JSON.stringify(s)}`, {
      cause,
    });
  }
}

/**
 * The peer address given to {@linkcode toRequest} for this request, if any.
 *
 * @example
 * ```ts
 * import { ParsedRequest, requestRemote, toRequest } from "./request.ts";
 *
 * const head = new ParsedRequest({
 *   method: "GET",
 *   target: "/",
 *   version: "1.1",
 *   headers: [["host", "h"]],
 * });
 * const request = toRequest(head, { remote: { hostname: "127.0.0.1", port: 50000 } });
 * console.log(requestRemote(request)?.port); // 50000
 * ```
 *
 * @param request A request built by {@linkcode toRequest}.
 * @returns The address, or `undefined`.
 */
export function requestRemote(request: Request): RemoteAddr | undefined {
  return remotes.get(request);
}

/**
 * Server side of the RFC 6455 opening handshake: validation of an upgrade request, the
 * accept key, and the bytes of the 101 response, of error responses and of responses
 * produced by a `fetch`-style handler for plain HTTP requests.
 *
 * Pure: no I/O. Extensions are always declined (no `Sec-WebSocket-Extensions` is ever
 * sent), which is the clean way to refuse permessage-deflate offers.
 *
 * @module
 */

import { base64Into, sha1Into } from "./sha1.ts";
import {
  encodeLatin1,
  isToken,
  listHasToken,
  splitList,
  trimOws,
  validateHeaders,
} from "../http/head.ts";
import { HandshakeError } from "../http/handshake_error.ts";
import { bodyFraming, type ParsedRequest } from "../http/request.ts";

/** The GUID appended to the key before hashing (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A handshake the server accepts. */
export interface UpgradeAccepted {
  /** Discriminant. */
  readonly ok: true;
  /** The client's `Sec-WebSocket-Key`, to pass to {@linkcode buildUpgradeResponse}. */
  readonly key: string;
  /** Offered subprotocols in the client's order of preference. */
  readonly protocols: string[];
  /** Names of the offered extensions, in order (informational: all are declined). */
  readonly extensions: string[];
}

/** A handshake the server refuses, with what to answer. */
export interface UpgradeRejected {
  /** Discriminant. */
  readonly ok: false;
  /** 400 malformed, 405 not GET, 426 unsupported WebSocket version. */
  readonly status: 400 | 405 | 426;
  /** Headers the answer must carry (`Allow`, `Sec-WebSocket-Version`), maybe none. */
  readonly headers: Array<[string, string]>;
  /** Human-readable reason, safe to send back. */
  readonly message: string;
}

/** Result of {@linkcode validateUpgrade}. */
export type UpgradeResult = UpgradeAccepted | UpgradeRejected;

function reject(
  status: 400 | 405 | 426,
  message: string,
  headers: Array<[string, string]> = [],
): UpgradeRejected {
  return { ok: false, status, headers, message };
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) table[B64.charCodeAt(i)] = i;
  return table;
})();

/**
 * Whether `key` is a valid `Sec-WebSocket-Key`: the canonical padded base64 of exactly
 * 16 bytes, i.e. 22 alphabet characters, the last of which has its 4 unused low bits
 * zero, then `==`. Non-canonical spellings (which lenient decoders also map to 16 bytes)
 * are refused: every real client encodes canonically.
 *
 * @example
 * ```ts
 * import { isValidKey } from "./server.ts";
 *
 * console.log(isValidKey("dGhlIHNhbXBsZSBub25jZQ==")); // true
 * console.log(isValidKey("dGhlIHNhbXBsZSBub25jZR==")); // false: non-canonical
 * ```
 *
 * @param key Candidate key.
 * @returns `true` when valid.
 */
export function isValidKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) {
    return false;
  }
  let last = 0;
  for (let i = 0; i < 22; i++) {
    const c = key.charCodeAt(i);
    last = c < 128 ? B64_VALUE[c] : -1;
    if (last < 0) return false;
  }
  return (last & 0x0f) === 0;
}

/**
 * Checks a request head against RFC 6455 §4.2.1, in this order:
 *
 * 1. method `GET`, else 405 with `Allow: GET`;
 * 2. HTTP/1.1, else 400 (the request is well-formed HTTP, just not a valid handshake;
 *    505 would claim the major version is unsupported);
 * 3. exactly one `Host`, else 400;
 * 4. no body announced (Content-Length > 0 or malformed, any Transfer-Encoding), else 400;
 * 5. `Upgrade` contains `websocket` and `Connection` contains `upgrade`
 *    (case-insensitive comma lists), else 400;
 * 6. a single `Sec-WebSocket-Version` line (repeated: 400) equal to `13`, else 426 with
 *    `Sec-WebSocket-Version: 13` (also when absent, to tell the client what we speak);
 * 7. a single `Sec-WebSocket-Key` that is canonical base64 of 16 bytes, else 400;
 * 8. `Sec-WebSocket-Protocol` lines: tokens, unique, else 400.
 *
 * @example The sample handshake of RFC 6455 §1.3
 * ```ts
 * import { ParsedRequest } from "../http/request.ts";
 * import { validateUpgrade } from "./server.ts";
 *
 * const result = validateUpgrade(
 *   new ParsedRequest({
 *     method: "GET",
 *     target: "/chat",
 *     version: "1.1",
 *     headers: [
 *       ["host", "server.example.com"],
 *       ["upgrade", "websocket"],
 *       ["connection", "Upgrade"],
 *       ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
 *       ["sec-websocket-protocol", "chat, superchat"],
 *       ["sec-websocket-version", "13"],
 *     ],
 *   }),
 * );
 * console.log(result.ok && result.protocols); // ["chat", "superchat"]
 * ```
 *
 * @param req Parsed request head.
 * @returns Accepted (key, offered protocols and extensions) or rejected (status,
 * headers, message).
 */
export function validateUpgrade(req: ParsedRequest): UpgradeResult {
  if (req.method !== "GET") {
    return reject(405, "WebSocket handshake requires GET", [["Allow", "GET"]]);
  }
  if (req.version !== "1.1") return reject(400, "WebSocket handshake requires HTTP/1.1");
  let hosts = 0;
  let upgrade = false;
  let connection = false;
  let version: string | null = null;
  let versions = 0;
  let key: string | null = null;
  let keys = 0;
  let protocolLines: string[] | null = null;
  let extensionLines: string[] | null = null;
  const headers = req.headers;
  for (let i = 0; i < headers.length; i++) {
    const value = headers[i][1];
    switch (headers[i][0]) {
      case "host":
        hosts++;
        break;
      case "upgrade":
        upgrade ||= listHasToken(value, "websocket");
        break;
      case "connection":
        connection ||= listHasToken(value, "upgrade");
        break;
      case "sec-websocket-version":
        versions++;
        version = value;
        break;
      case "sec-websocket-key":
        keys++;
        key = value;
        break;
      case "sec-websocket-protocol":
        (protocolLines ??= []).push(value);
        break;
      case "sec-websocket-extensions":
        (extensionLines ??= []).push(value);
        break;
    }
  }
  if (hosts !== 1) return reject(400, "exactly one Host header is required");
  const framing = bodyFraming(req);
  if (framing.kind !== "none") {
    return reject(
      400,
      framing.kind === "invalid"
        ? `WebSocket handshake must not have a body (${framing.message})`
        : "WebSocket handshake must not have a body",
    );
  }
  if (!upgrade) return reject(400, "Upgrade header must contain websocket");
  if (!connection) return reject(400, "Connection header must contain upgrade");
  if (versions > 1) return reject(400, "repeated Sec-WebSocket-Version header");
  if (version !== "13") {
    return reject(426, "unsupported WebSocket version; use 13", [["Sec-WebSocket-Version", "13"]]);
  }
  if (keys !== 1 || key === null) {
    return reject(400, keys === 0 ? "missing Sec-WebSocket-Key" : "repeated Sec-WebSocket-Key");
  }
  if (!isValidKey(key)) {
    return reject(400, "Sec-WebSocket-Key must be base64 of 16 bytes");
  }
  const protocols: string[] = [];
  if (protocolLines !== null) {
    for (const line of protocolLines) {
      for (const part of line.split(",")) {
        const p = trimOws(part);
        if (p === "") continue;
        if (!isToken(p)) return reject(400, "invalid subprotocol in Sec-WebSocket-Protocol");
        if (protocols.includes(p)) return reject(400, `subprotocol ${p} offered twice`);
        protocols.push(p);
      }
    }
  }
  const extensions: string[] = [];
  if (extensionLines !== null) {
    for (const line of extensionLines) {
      for (const item of splitList(line)) {
        const semi = item.indexOf(";");
        const name = semi === -1 ? item : trimOws(item.slice(0, semi));
        if (isToken(name)) extensions.push(name);
      }
    }
  }
  return { ok: true, key, protocols, extensions };
}

/**
 * `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2.
 *
 * @example
 * ```ts
 * import { acceptKey } from "./server.ts";
 *
 * console.log(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The accept value.
 */
export function acceptKey(key: string): string {
  const n = writeAccept(key, ACCEPT_OUT, 0);
  return String.fromCharCode.apply(null, ACCEPT_OUT.subarray(0, n) as unknown as number[]);
}

// The accept key is computed once per connection: fixed buffers, no garbage but the result.
const GUID_BYTES = new TextEncoder().encode(WEBSOCKET_GUID);
let acceptInput = new Uint8Array(24 + GUID_BYTES.length);
const ACCEPT_DIGEST = new Uint8Array(20);
const ACCEPT_OUT = new Uint8Array(28);

/** Writes base64(SHA-1(key + GUID)) (28 ASCII bytes) into `out` at `offset`. */
function writeAccept(key: string, out: Uint8Array, offset: number): number {
  const total = key.length + GUID_BYTES.length;
  if (acceptInput.length < total) acceptInput = new Uint8Array(total);
  // A validated key is base64 (ASCII); other characters are reduced to their low byte, as
  // the ISO-8859-1 header decoding produced them.
  for (let i = 0; i < key.length; i++) acceptInput[i] = key.charCodeAt(i);
  acceptInput.set(GUID_BYTES, key.length);
  sha1Into(acceptInput, total, ACCEPT_DIGEST, 0);
  return base64Into(ACCEPT_DIGEST, 20, out, offset);
}

/**
 * Checks the application's subprotocol pick against the client's offer.
 *
 * @example
 * ```ts
 * import { selectProtocol } from "./server.ts";
 *
 * console.log(selectProtocol(["chat", "superchat"], "chat")); // "chat"
 * console.log(selectProtocol(["chat"], null)); // null
 * ```
 *
 * @param offered Protocols from {@linkcode UpgradeAccepted.protocols}.
 * @param choice The pick, or `null`/`undefined` for none.
 * @returns The pick, or `null` for none.
 * @throws {HandshakeError} `PROTOCOL_NOT_OFFERED` when the pick was not offered.
 */
export function selectProtocol(
  offered: readonly string[],
  choice: string | null | undefined,
): string | null {
  if (choice === null || choice === undefined) return null;
  if (!offered.includes(choice)) {
    throw new HandshakeError(
      "PROTOCOL_NOT_OFFERED",
      `subprotocol ${JSON.stringify(choice)} was not offered by the client`,
    );
  }
  return choice;
}

/** Options of {@linkcode buildUpgradeResponse}. */
export interface UpgradeResponseOptions {
  /** The client's `Sec-WebSocket-Key` ({@linkcode UpgradeAccepted.key}). */
  key: string;
  /** The chosen subprotocol, or `null`/absent for none. */
  protocol?: string | null;
  /**
   * The client's offer; when given, `protocol` must be one of them
   * (see {@linkcode selectProtocol}).
   */
  offered?: readonly string[];
  /** Extra headers (e.g. `Set-Cookie`); must not set the handshake headers. */
  headers?: HeadersInit;
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), e.g. a permessage-deflate response. */
  extensions?: string | null;
}

const UPGRADE_HEAD = new TextEncoder().encode(
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: ",
);

/**
 * Length of the common `101` answer (no subprotocol, extra headers or extensions): the
 * size of a scratch buffer for {@linkcode buildUpgradeResponse}.
 *
 * @example
 * ```ts
 * import { buildUpgradeResponse, UPGRADE_ANSWER_LENGTH } from "./server.ts";
 *
 * const scratch = new Uint8Array(UPGRADE_ANSWER_LENGTH);
 * const answer = buildUpgradeResponse({ key: "dGhlIHNhbXBsZSBub25jZQ==" }, scratch);
 * console.log(answer === scratch); // true
 * ```
 */
export const UPGRADE_ANSWER_LENGTH: number = UPGRADE_HEAD.length + 28 + 4;
const CRLF_CRLF = new Uint8Array([13, 10, 13, 10]);

const UPGRADE_RESERVED: ReadonlySet<string> = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "sec-websocket-version",
  "content-length",
  "transfer-encoding",
]);

/**
 * Bytes of the `101 Switching Protocols` response.
 *
 * @example
 * ```ts
 * import { buildUpgradeResponse } from "./server.ts";
 *
 * const bytes = buildUpgradeResponse({ key: "dGhlIHNhbXBsZSBub25jZQ==", protocol: "chat" });
 * console.log(new TextDecoder().decode(bytes));
 * // HTTP/1.1 101 Switching Protocols
 * // Upgrade: websocket
 * // Connection: Upgrade
 * // Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * // Sec-WebSocket-Protocol: chat
 * ```
 *
 * @param options Key, chosen protocol and extra headers.
 * @param scratch Where the common answer (no protocol, headers or extensions) is written
 * when given, of {@linkcode UPGRADE_ANSWER_LENGTH} bytes: the result is then `scratch`
 * itself, valid until the caller reuses it. A server
 * answering thousands of handshakes a second keeps one instead of a buffer per answer.
 * @returns The response head.
 * @throws {HandshakeError} `INVALID_KEY`, `INVALID_PROTOCOL`, `PROTOCOL_NOT_OFFERED`,
 * `HEADER_INJECTION`, `INVALID_HEADER` or `RESERVED_HEADER`.
 */
export function buildUpgradeResponse(
  options: UpgradeResponseOptions,
  scratch?: Uint8Array,
): Uint8Array {
  const { key, protocol } = options;
  if (!isValidKey(key)) {
    throw new HandshakeError("INVALID_KEY", "Sec-WebSocket-Key must be base64 of 16 bytes");
  }
  const extensions = options.extensions ?? null;
  if (
    (protocol === null || protocol === undefined) && options.headers === undefined &&
    extensions === null
  ) {
    // The common answer: a fixed head around the 28-byte accept key, built in one buffer.
    const out = scratch !== undefined && scratch.length === UPGRADE_ANSWER_LENGTH
      ? scratch
      : new Uint8Array(UPGRADE_ANSWER_LENGTH);
    out.set(UPGRADE_HEAD);
    const n = writeAccept(key, out, UPGRADE_HEAD.length);
    out.set(CRLF_CRLF, UPGRADE_HEAD.length + n);
    return out;
  }
  let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
  if (protocol !== null && protocol !== undefined) {
    if (!isToken(protocol)) {
      throw new HandshakeError(
        "INVALID_PROTOCOL",
        `subprotocol ${JSON.stringify(protocol)} is not a token`,
      );
    }
    if (options.offered !== undefined) selectProtocol(options.offered, protocol);
    head += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  }
  if (extensions !== null) {
    for (let i = 0; i < extensions.length; i++) {
      const c = extensions.charCodeAt(i);
      if (c < 0x20 || c > 0x7e) {
        throw new HandshakeError("HEADER_INJECTION", "extensions must be printable ASCII");
      }
    }
    head += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  }
  for (const [name, value] of validateHeaders(options.headers, UPGRADE_RESERVED)) {
    head += `${name}: ${value}\r\n`;
  }
  return encodeLatin1(head + "\r\n", 0);
}

const REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  511: "Network Authentication Required",
};

/**
 * The RFC 9110 reason phrase of a status code, or `""` when it has none.
 *
 * @example
 * ```ts
 * import { reasonPhrase } from "./server.ts";
 *
 * console.log(reasonPhrase(426)); // "Upgrade Required"
 * ```
 *
 * @param status Status code.
 * @returns The reason phrase.
 */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "";
}

/** Options of {@linkcode buildErrorResponse}. */
export interface ErrorResponseOptions {
  /**
   * Extra headers (e.g. from {@linkcode UpgradeRejected.headers}); may set
   * `Content-Type`, not `Connection`, `Content-Length` or `Transfer-Encoding`.
   */
  headers?: HeadersInit;
  /** Body text (UTF-8); defaults to the reason phrase. */
  body?: string;
  /** `Date` header value; default now, `null` to omit (RFC 9110 §6.6.1). */
  date?: Date | null;
}

const ERROR_RESERVED: ReadonlySet<string> = new Set([
  "connection",
  "content-length",
  "transfer-encoding",
]);

const utf8 = new TextEncoder();

/**
 * Bytes of a complete error response that closes the connection:
 * `Connection: close`, `Content-Type: text/plain; charset=utf-8` (unless overridden),
 * `Content-Length` and the body.
 *
 * @example Answer a refused handshake
 * ```ts
 * import { buildErrorResponse } from "./server.ts";
 *
 * const bytes = buildErrorResponse(426, {
 *   headers: [["Sec-WebSocket-Version", "13"]],
 *   date: null,
 * });
 * console.log(new TextDecoder().decode(bytes));
 * ```
 *
 * @param status Status code, 200–599 except 204, 205 and 304 (which have no content).
 * @param options Extra headers, body and date.
 * @returns The whole response.
 * @throws {HandshakeError} `INVALID_STATUS`, `HEADER_INJECTION`, `INVALID_HEADER` or
 * `RESERVED_HEADER`.
 */
export function buildErrorResponse(status: number, options: ErrorResponseOptions = {}): Uint8Array {
  if (
    !Number.isInteger(status) || status < 200 || status > 599 || status === 204 ||
    status === 205 || status === 304
  ) {
    throw new HandshakeError("INVALID_STATUS", `cannot build an error response with ${status}`);
  }
  const reason = reasonPhrase(status);
  const body = utf8.encode(options.body ?? (reason || String(status)));
  const extra = validateHeaders(options.headers, ERROR_RESERVED);
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  const date = options.date === undefined ? new Date() : options.date;
  if (date !== null) head += `Date: ${date.toUTCString()}\r\n`;
  head += "Connection: close\r\n";
  let contentType = false;
  for (const [name] of extra) contentType ||= name.toLowerCase() === "content-type";
  if (!contentType) head += "Content-Type: text/plain; charset=utf-8\r\n";
  head += `Content-Length: ${body.length}\r\n`;
  for (const [name, value] of extra) head += `${name}: ${value}\r\n`;
  head += "\r\n";
  const out = encodeLatin1(head, body.length);
  out.set(body, head.length);
  return out;
}

/** Options of {@linkcode serializeResponse}. */
export interface SerializeResponseOptions {
  /** Keep the connection open after the response: omits `Connection: close`. */
  keepAlive?: boolean;
  /** The response answers a HEAD request: headers only, Content-Length of the body. */
  head?: boolean;
  /** `Date` when the response has none; default now, `null` to omit. */
  date?: Date | null;
}

/** Managed by the serializer; a handler's values would contradict the bytes sent. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
]);

/**
 * Bytes of a WHATWG `Response` produced by an HTTP handler, as an HTTP/1.1 response
 * with a `Content-Length` body (the body is read whole with `arrayBuffer()`).
 *
 * The handler's `Connection`, `Keep-Alive`, `Transfer-Encoding` and `Content-Length`
 * are replaced by the serializer's own. No body is sent for HEAD (but Content-Length is
 * the body's length, or the handler's own Content-Length when it gave no body), 204
 * (no Content-Length either), 205 (`Content-Length: 0`) and 304 (the handler's
 * Content-Length, if any, is kept since it describes the selected representation).
 *
 * @example
 * ```ts
 * import { serializeResponse } from "./server.ts";
 *
 * const bytes = await serializeResponse(new Response("hi"), { date: null });
 * console.log(new TextDecoder().decode(bytes));
 * // HTTP/1.1 200 OK
 * // content-type: text/plain;charset=UTF-8
 * // Connection: close
 * // Content-Length: 2
 * //
 * // hi
 * ```
 *
 * @param res The handler's response.
 * @param options Keep-alive, HEAD and date.
 * @returns The whole response.
 * @throws {HandshakeError} `INVALID_STATUS` for a 1xx response. Rejects when reading the
 * body fails.
 */
export async function serializeResponse(
  res: Response,
  options: SerializeResponseOptions = {},
): Promise<Uint8Array> {
  const status = res.status;
  if (status < 200) {
    throw new HandshakeError("INVALID_STATUS", `a handler cannot answer with ${status}`);
  }
  let body: Uint8Array | null = null;
  if (res.body !== null) body = new Uint8Array(await res.arrayBuffer());
  let head = `HTTP/1.1 ${status} ${res.statusText || reasonPhrase(status)}\r\n`;
  let hasDate = false;
  let ownLength: string | null = null;
  for (const [name, value] of res.headers) {
    if (HOP_BY_HOP.has(name)) {
      if (name === "content-length") ownLength = value;
      continue;
    }
    if (name === "date") hasDate = true;
    head += `${name}: ${value}\r\n`;
  }
  if (!hasDate) {
    const date = options.date === undefined ? new Date() : options.date;
    if (date !== null) head += `Date: ${date.toUTCString()}\r\n`;
  }
  if (!options.keepAlive) head += "Connection: close\r\n";
  let length: string | null;
  if (status === 204) length = null;
  else if (status === 205) length = "0";
  else if (status === 304) length = ownLength !== null && isDigits(ownLength) ? ownLength : null;
  else if (body === null && options.head && ownLength !== null && isDigits(ownLength)) {
    length = ownLength;
  } else length = String(body?.length ?? 0);
  if (length !== null) head += `Content-Length: ${length}\r\n`;
  head += "\r\n";
  const send = options.head || status === 204 || status === 205 || status === 304 ? null : body;
  const out = encodeLatin1(head, send?.length ?? 0);
  if (send !== null) out.set(send, head.length);
  return out;
}

function isDigits(s: string): boolean {
  if (s === "") return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

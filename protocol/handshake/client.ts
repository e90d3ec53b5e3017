/**
 * Client side of the RFC 6455 opening handshake: key generation, the bytes of the
 * upgrade request, and validation of the server's response head (parsed with
 * `HttpResponseParser`). No extensions are ever offered, so any extension in the answer
 * is a failure.
 *
 * @module
 */

import { acceptKey, isValidKey } from "./server.ts";
import { encodeLatin1, isToken, listHasToken, validateHeaders } from "../http/head.ts";
import { HandshakeError } from "../http/handshake_error.ts";
import type { ParsedResponse } from "../http/response.ts";

/**
 * A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (RFC 6455 §4.1).
 *
 * @example
 * ```ts
 * import { generateKey } from "./client.ts";
 *
 * console.log(generateKey().length); // 24
 * ```
 *
 * @returns The key.
 */
export function generateKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = "";
  for (let i = 0; i < 16; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

/** Options of {@linkcode buildClientRequest}. */
export interface ClientRequestOptions {
  /** Subprotocols to offer, by preference; tokens, unique. */
  protocols?: readonly string[];
  /** Extra headers (e.g. `Origin`, `Authorization`); must not set handshake headers. */
  headers?: HeadersInit;
  /** Extensions to offer (`Sec-WebSocket-Extensions`), e.g. a permessage-deflate offer. */
  extensions?: string;
}

const CLIENT_RESERVED: ReadonlySet<string> = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "content-length",
  "transfer-encoding",
]);

/**
 * Bytes of the upgrade request for a `ws:` (or `wss:`, the TLS layer being someone
 * else's concern) URL. `Host` carries the port only when it is not the scheme's
 * default, IPv6 hosts in brackets; the target is path + query. Credentials in the URL
 * are not sent.
 *
 * @example
 * ```ts
 * import { buildClientRequest, generateKey } from "./client.ts";
 *
 * const bytes = buildClientRequest(new URL("ws://[::1]:8080/chat?room=1"), generateKey(), {
 *   protocols: ["chat"],
 * });
 * console.log(new TextDecoder().decode(bytes));
 * // GET /chat?room=1 HTTP/1.1
 * // Host: [::1]:8080
 * // ...
 * ```
 *
 * @param url Server URL.
 * @param key Key from {@linkcode generateKey}.
 * @param options Protocols and extra headers.
 * @returns The request head.
 * @throws {HandshakeError} `INVALID_URL` (not ws/wss, or with a fragment),
 * `INVALID_KEY`, `INVALID_PROTOCOL`, `HEADER_INJECTION`, `INVALID_HEADER` or
 * `RESERVED_HEADER`.
 */
export function buildClientRequest(
  url: URL,
  key: string,
  options: ClientRequestOptions = {},
): Uint8Array {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new HandshakeError("INVALID_URL", `expected a ws: or wss: URL, got ${url.protocol}`);
  }
  if (url.hash !== "" || url.href.endsWith("#")) {
    throw new HandshakeError("INVALID_URL", "WebSocket URLs must not have a fragment");
  }
  if (!isValidKey(key)) {
    throw new HandshakeError("INVALID_KEY", "Sec-WebSocket-Key must be base64 of 16 bytes");
  }
  const protocols = options.protocols ?? [];
  for (let i = 0; i < protocols.length; i++) {
    const p = protocols[i];
    if (!isToken(p)) {
      throw new HandshakeError(
        "INVALID_PROTOCOL",
        `subprotocol ${JSON.stringify(p)} is not a token`,
      );
    }
    if (protocols.indexOf(p) !== i) {
      throw new HandshakeError("INVALID_PROTOCOL", `subprotocol ${p} is listed twice`);
    }
  }
  const extra = validateHeaders(options.headers, CLIENT_RESERVED);
  // `search` is "" for both no query and an empty one; the WHATWG resource name keeps
  // the "?" of an empty query, and href shows it (the fragment was refused above).
  const query = url.search !== "" ? url.search : url.href.endsWith("?") ? "?" : "";
  let head = `GET ${url.pathname || "/"}${query} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  if (protocols.length > 0) head += `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n`;
  const extensions = options.extensions ?? "";
  if (extensions !== "") {
    for (let i = 0; i < extensions.length; i++) {
      const c = extensions.charCodeAt(i);
      if (c < 0x20 || c > 0x7e) {
        throw new HandshakeError("HEADER_INJECTION", "extensions must be printable ASCII");
      }
    }
    head += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  }
  for (const [name, value] of extra) head += `${name}: ${value}\r\n`;
  return encodeLatin1(head + "\r\n", 0);
}

/** Result of {@linkcode validateUpgradeResponse}. */
export type ClientHandshakeResult =
  | {
    /** Discriminant. */
    readonly ok: true;
    /** The subprotocol the server chose, or `null`. */
    readonly protocol: string | null;
  }
  | {
    /** Discriminant. */
    readonly ok: false;
    /** Why the handshake failed (RFC 6455 §4.1 "Fail the WebSocket Connection"). */
    readonly message: string;
  };

function fail(message: string): ClientHandshakeResult {
  return { ok: false, message };
}

/**
 * Checks the server's answer against RFC 6455 §4.1: status 101, `Upgrade: websocket`,
 * `Connection` containing `upgrade`, exactly one matching `Sec-WebSocket-Accept`, no
 * `Sec-WebSocket-Extensions` (none were offered), and at most one
 * `Sec-WebSocket-Protocol` naming an offered protocol.
 *
 * @example
 * ```ts
 * import { ParsedResponse } from "../http/response.ts";
 * import { validateUpgradeResponse } from "./client.ts";
 *
 * const res = new ParsedResponse({
 *   version: "1.1",
 *   status: 101,
 *   reason: "Switching Protocols",
 *   headers: [
 *     ["upgrade", "websocket"],
 *     ["connection", "Upgrade"],
 *     ["sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
 *   ],
 * });
 * console.log(validateUpgradeResponse(res, "dGhlIHNhbXBsZSBub25jZQ==", [])); // { ok: true, protocol: null }
 * ```
 *
 * @param res Parsed response head.
 * @param key The key sent in the request.
 * @param offeredProtocols The protocols sent in the request.
 * @param offeredExtensions True when the request offered extensions: the response's
 * `Sec-WebSocket-Extensions` is then for the caller to check against its offer.
 * @returns Success with the chosen protocol, or failure with a message.
 */
export function validateUpgradeResponse(
  res: ParsedResponse,
  key: string,
  offeredProtocols: readonly string[],
  offeredExtensions = false,
): ClientHandshakeResult {
  if (res.status !== 101) {
    return fail(`expected status 101, got ${res.status} ${res.reason}`.trimEnd());
  }
  const upgrade = res.get("upgrade");
  if (upgrade === null || upgrade.toLowerCase() !== "websocket") {
    return fail("Upgrade header of the response must be websocket");
  }
  if (!listHasToken(res.get("connection"), "upgrade")) {
    return fail("Connection header of the response must contain upgrade");
  }
  const accepts = res.getAll("sec-websocket-accept");
  if (accepts.length !== 1) {
    return fail(
      accepts.length === 0 ? "missing Sec-WebSocket-Accept" : "repeated Sec-WebSocket-Accept",
    );
  }
  if (accepts[0] !== acceptKey(key)) return fail("Sec-WebSocket-Accept does not match the key");
  // What an offer got back is the offer's own business (permessage-deflate checks it).
  if (!offeredExtensions && res.has("sec-websocket-extensions")) {
    return fail("server accepted an extension that was not offered");
  }
  const chosen = res.getAll("sec-websocket-protocol");
  if (chosen.length === 0) return { ok: true, protocol: null };
  if (chosen.length > 1) return fail("repeated Sec-WebSocket-Protocol");
  const protocol = chosen[0];
  if (!offeredProtocols.includes(protocol)) {
    return fail(
      offeredProtocols.length === 0
        ? "server chose a subprotocol although none was offered"
        : `server chose subprotocol ${JSON.stringify(protocol)} that was not offered`,
    );
  }
  return { ok: true, protocol };
}

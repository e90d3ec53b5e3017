/**
 * ALPN (RFC 7301): the protocol list in its wire form, the server's choice (a callback
 * OpenSSL calls synchronously inside `SSL_do_handshake`, on this thread) and the result
 * of a handshake.
 *
 * @module
 */

import {
  openSsl,
  OPENSSL_NPN_NEGOTIATED,
  SSL_TLSEXT_ERR_NOACK,
  SSL_TLSEXT_ERR_OK,
  TlsError,
} from "../../ffi/openssl.ts";

/** The protocol a WebSocket opening handshake runs over. */
export const HTTP_1_1 = "http/1.1";

/**
 * Protocol names in ALPN wire form: each as a length byte and its bytes.
 *
 * @param protocols Names in preference order (1 to 255 bytes each).
 * @returns The wire form.
 *
 * @example
 * ```ts
 * import { alpnWire } from "./alpn.ts";
 * console.log(alpnWire(["http/1.1"])); // Uint8Array(9) [ 8, 104, 116, 116, 112, 47, 49, 46, 49 ]
 * ```
 */
export function alpnWire(protocols: readonly string[]): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const parts = protocols.map((p) => enc.encode(p));
  let size = 0;
  for (const p of parts) {
    if (p.length === 0 || p.length > 255) {
      throw new TlsError("TLS_INVALID_ARGUMENT", "an ALPN protocol name has 1 to 255 bytes");
    }
    size += 1 + p.length;
  }
  const out = new Uint8Array(new ArrayBuffer(size));
  let at = 0;
  for (const p of parts) {
    out[at++] = p.length;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Server lists by wire text. Each is kept for the life of the isolate: OpenSSL reads the
 * chosen name from it after the callback returns, and a context may outlive its owner's
 * reference while sessions use it. Byte 0 holds the list's length, the list follows.
 */
const serverLists = new Map<string, { buf: Uint8Array; arg: Deno.PointerValue }>();

let selectCallback:
  | Deno.UnsafeCallback<{
    readonly parameters: readonly ["pointer", "pointer", "pointer", "pointer", "u32", "pointer"];
    readonly result: "i32";
  }>
  | null = null;

/**
 * The ALPN select callback, created once per isolate:
 * `int cb(SSL*, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
 * unsigned int inlen, void *arg)`; `arg` points at a list of {@link serverLists}. The
 * server's preference wins; with no overlap the extension is not acknowledged and the
 * handshake goes on without ALPN (a client that offered only `h2` still gets HTTP/1.1).
 */
function alpnSelectCallback(): Deno.PointerObject {
  if (selectCallback === null) {
    const { ssl } = openSsl();
    selectCallback = new Deno.UnsafeCallback(
      {
        parameters: ["pointer", "pointer", "pointer", "pointer", "u32", "pointer"],
        result: "i32",
      } as const,
      (_s, out, outlen, input, inputLength, arg) => {
        try {
          if (arg === null || input === null) return SSL_TLSEXT_ERR_NOACK;
          const length = new Deno.UnsafePointerView(arg).getUint8(0);
          const list = Deno.UnsafePointer.offset(arg, 1);
          const r = ssl.SSL_select_next_proto(out, outlen, list, length, input, inputLength);
          return r === OPENSSL_NPN_NEGOTIATED ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
        } catch {
          return SSL_TLSEXT_ERR_NOACK;
        }
      },
    );
  }
  return selectCallback.pointer;
}

/**
 * Makes a server context choose among `protocols` (its preference order) from what each
 * client offers.
 *
 * @param ctx A server `SSL_CTX*`.
 * @param protocols Names in preference order.
 */
export function serveAlpn(ctx: Deno.PointerObject, protocols: readonly string[]): void {
  if (protocols.length === 0) return;
  const wire = alpnWire(protocols);
  if (wire.length > 255) {
    throw new TlsError("TLS_INVALID_ARGUMENT", "the ALPN protocol list is longer than 255 bytes");
  }
  const key = protocols.join("\n");
  let entry = serverLists.get(key);
  if (entry === undefined) {
    const buf = new Uint8Array(new ArrayBuffer(wire.length + 1));
    buf[0] = wire.length;
    buf.set(wire, 1);
    entry = { buf, arg: Deno.UnsafePointer.of(buf) };
    serverLists.set(key, entry);
  }
  openSsl().ssl.SSL_CTX_set_alpn_select_cb(ctx, alpnSelectCallback(), entry.arg);
}

/**
 * Makes a client context offer `protocols`.
 *
 * @param ctx A client `SSL_CTX*`.
 * @param protocols Names in preference order.
 */
export function offerAlpn(ctx: Deno.PointerObject, protocols: readonly string[]): void {
  if (protocols.length === 0) return;
  const wire = alpnWire(protocols);
  // The one OpenSSL setter that returns 0 on success.
  if (openSsl().ssl.SSL_CTX_set_alpn_protos(ctx, wire, wire.length) !== 0) {
    throw new TlsError("TLS_CONFIG", "OpenSSL refused the ALPN protocol list");
  }
}

const selectedPtr = new BigUint64Array(1);
const selectedLen = new Uint32Array(1);

/**
 * The protocol a finished handshake agreed on, or null when none was.
 *
 * @param ssl An `SSL*` whose handshake is done.
 * @returns The protocol name.
 */
export function selectedAlpn(ssl: Deno.PointerObject): string | null {
  selectedPtr[0] = 0n;
  selectedLen[0] = 0;
  openSsl().ssl.SSL_get0_alpn_selected(ssl, selectedPtr, selectedLen);
  const p = Deno.UnsafePointer.create(selectedPtr[0]);
  if (p === null || selectedLen[0] === 0) return null;
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, selectedLen[0]));
  return new TextDecoder().decode(bytes.slice());
}

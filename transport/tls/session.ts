/**
 * What every TLS transport does the same way whatever carries its bytes: creating the
 * OpenSSL session of a connection (server or client side, with the client's SNI and name
 * check) and putting a failure into words.
 *
 * @module
 */

import { errnoName } from "../../ffi/errno.ts";
import {
  cString,
  type LibCrypto,
  type LibSsl,
  openSsl,
  SSL_CTRL_SET_TLSEXT_HOSTNAME,
  SSL_ERROR_SSL,
  SSL_ERROR_SYSCALL,
  takeOpenSslErrors,
  TlsError,
  TLSEXT_NAMETYPE_host_name,
  toCString,
  X509_V_OK,
} from "../../ffi/openssl.ts";
import { parseIp } from "../../net/address.ts";
import type { TlsContext, TlsGeneration } from "./context.ts";

/** A new session, before its handshake, with the generation it came from. */
export interface NewSession {
  /** The `SSL*` (the caller frees it with `SSL_free`). */
  readonly ssl: Deno.PointerObject;
  /** The context generation it was created from. */
  readonly generation: TlsGeneration;
  /** libssl, bound. */
  readonly S: LibSsl;
  /** libcrypto, bound. */
  readonly C: LibCrypto;
}

/**
 * The host name as a client checks it: no brackets around IPv6, no trailing dot.
 *
 * @param hostname As the user gave it.
 * @returns The name to send and verify.
 *
 * @example
 * ```ts
 * import { normalizeHost } from "./session.ts";
 * console.log(normalizeHost("[::1]"), normalizeHost("example.com.")); // "::1" "example.com"
 * ```
 */
export function normalizeHost(hostname: string): string {
  let host = hostname.trim();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return host.replace(/\.$/, "");
}

/**
 * Creates the session of one connection: the server side when `hostname` is null, else
 * the client side, which sends `hostname` as SNI (not an IP literal) and fails its
 * handshake unless the server's certificate is valid for it (DNS name, or the address of
 * an IP literal). Throws a {@link TlsError} when the context has the other role, is closed,
 * or OpenSSL refuses.
 *
 * @param context The configuration.
 * @param hostname The server's name for a client, null for a server.
 * @returns The session.
 */
export function newSession(context: TlsContext, hostname: string | null): NewSession {
  const want = hostname === null ? "server" : "client";
  if (context.role !== want) {
    throw new TlsError(
      "TLS_INVALID_ARGUMENT",
      `a ${want} session needs a ${want} context (got a ${context.role} context)`,
    );
  }
  const host = hostname === null ? "" : normalizeHost(hostname);
  if (hostname !== null && host === "") {
    throw new TlsError("TLS_INVALID_ARGUMENT", "a TLS client needs a host name");
  }
  const { ssl: S, crypto: C } = openSsl();
  const generation = context.current();
  const ssl = S.SSL_new(generation.ctx);
  if (ssl === null) throw new TlsError("TLS_CONFIG", `SSL_new failed: ${takeOpenSslErrors()}`);
  if (hostname === null) {
    S.SSL_set_accept_state(ssl);
    return { ssl, generation, S, C };
  }
  S.SSL_set_connect_state(ssl);
  let ok: boolean;
  if (host.toLowerCase() !== "localhost" && parseIp(host) !== null) {
    // A zone ("%eth0") is local routing, not part of the certified address.
    const ip = toCString(host.replace(/%.*$/, ""));
    ok = C.X509_VERIFY_PARAM_set1_ip_asc(S.SSL_get0_param(ssl), ip) === 1;
  } else {
    const name = toCString(host);
    ok = S.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, BigInt(TLSEXT_NAMETYPE_host_name), name) ===
        1n && S.SSL_set1_host(ssl, name) === 1;
  }
  if (!ok) {
    const why = takeOpenSslErrors();
    S.SSL_free(ssl);
    throw new TlsError("TLS_INVALID_ARGUMENT", `"${hostname}" cannot be checked: ${why}`);
  }
  return { ssl, generation, S, C };
}

/**
 * Why an OpenSSL call failed, in words: the errno name for a system call failure, "the
 * peer closed the connection" for an EOF, the certificate check's verdict when a client's
 * verification failed, else OpenSSL's queued errors.
 *
 * @param ssl The session.
 * @param role Its side.
 * @param err `SSL_get_error`'s answer.
 * @param e errno read right after the failed call.
 * @param queued The error queue's text (already taken from the queue).
 * @returns The cause.
 */
export function describeFailure(
  ssl: Deno.PointerObject,
  role: "server" | "client",
  err: number,
  e: number,
  queued: string,
): string {
  if (err === SSL_ERROR_SYSCALL) {
    if (e !== 0) return errnoName(e);
    return queued === "" ? "the peer closed the connection" : queued;
  }
  if (role === "client") {
    const { ssl: S, crypto: C } = openSsl();
    const v = S.SSL_get_verify_result(ssl);
    if (v !== BigInt(X509_V_OK)) {
      return `certificate verify failed: ${cString(C.X509_verify_cert_error_string(v))}`;
    }
  }
  if (queued !== "") return queued;
  return err === SSL_ERROR_SSL ? "protocol error" : `error ${err}`;
}

/**
 * Building an OpenSSL `SSL_CTX` with the settings every fdws connection shares, and
 * installing a certificate chain and its key on it.
 *
 * Shared settings, and why:
 * - TLS 1.2 minimum, OpenSSL's default cipher lists and groups (they track current advice).
 * - `SSL_MODE_ENABLE_PARTIAL_WRITE`: `SSL_write` returns after each record instead of
 *   holding the caller until every byte is out; the transport loops over records.
 * - `SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER`: a write that returned "want write" is retried
 *   from a copy of the same bytes (the outbox moves unsent arena bytes into a chunk).
 * - `SSL_MODE_RELEASE_BUFFERS`: an idle connection gives back its record buffers (64 KiB
 *   read-ahead, ~17 KB write).
 * - read-ahead into a 64 KiB buffer: one `read` takes a record's header and body and the
 *   records that follow, instead of two syscalls per record.
 * - `SSL_OP_NO_RENEGOTIATION`: no renegotiation in either direction (TLS 1.3 has none;
 *   in 1.2 it is an attack surface and would make reads want writes).
 * - `SSL_OP_ENABLE_KTLS` when asked: OpenSSL hands the record layer to the kernel after
 *   the handshake if the kernel, the cipher and the build allow it.
 *
 * @module
 */

import {
  openSsl,
  SSL_CTRL_CHAIN_CERT,
  SSL_CTRL_MODE,
  SSL_CTRL_SET_MIN_PROTO_VERSION,
  SSL_CTRL_SET_READ_AHEAD,
  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
  SSL_MODE_ENABLE_PARTIAL_WRITE,
  SSL_MODE_RELEASE_BUFFERS,
  SSL_OP_ENABLE_KTLS,
  SSL_OP_NO_COMPRESSION,
  SSL_OP_NO_RENEGOTIATION,
  takeOpenSslErrors,
  TLS1_2_VERSION,
  TLS1_3_VERSION,
  TlsError,
} from "../../ffi/openssl.ts";
import { type PemInput, readCertificates, readPrivateKey } from "./pem.ts";

/** The oldest protocol version a context accepts. */
export type TlsMinVersion = "TLSv1.2" | "TLSv1.3";

/** Settings of {@link newNativeContext}. */
export interface NativeContextOptions {
  /** Which side. */
  role: "server" | "client";
  /** Default `"TLSv1.2"`. */
  minVersion?: TlsMinVersion;
  /** Ask for kernel TLS (Linux). */
  ktls: boolean;
  /**
   * Read-ahead buffer size (bytes), see {@link DEFAULT_READ_BUFFER_SIZE}; 0 keeps OpenSSL's
   * (one maximal record, ~17 KB).
   */
  readBufferSize?: number;
}

/**
 * Read-ahead buffer of a connection while it holds received records: 64 KiB, so that one
 * `read` takes several records. Measured (bench/tls_transport_bench.ts, docs/tls.md): for
 * pipelined 16 KiB messages one read per message fewer and ~11% less CPU than OpenSSL's
 * one-record buffer, no difference for 32 B messages. `SSL_MODE_RELEASE_BUFFERS` frees it
 * whenever it is empty, so idle connections do not hold it.
 */
export const DEFAULT_READ_BUFFER_SIZE = 65536;

const MODES = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
  SSL_MODE_RELEASE_BUFFERS;

/** Throws a `TLS_CONFIG` error quoting OpenSSL's queue. */
function refused(what: string): never {
  const why = takeOpenSslErrors();
  throw new TlsError("TLS_CONFIG", `OpenSSL refused ${what}${why !== "" ? `: ${why}` : ""}`);
}

/**
 * A new `SSL_CTX` with the shared settings (see the module notes). The caller owns it
 * (`SSL_CTX_free`).
 *
 * @param options Role and protocol settings.
 * @returns The context.
 *
 * @example
 * ```ts
 * import { newNativeContext } from "./native.ts";
 * import { openSsl } from "../../ffi/openssl.ts";
 * const ctx = newNativeContext({ role: "client", ktls: false });
 * openSsl().ssl.SSL_CTX_free(ctx);
 * ```
 */
export function newNativeContext(options: NativeContextOptions): Deno.PointerObject {
  const { ssl } = openSsl();
  const method = options.role === "server" ? ssl.TLS_server_method() : ssl.TLS_client_method();
  const ctx = ssl.SSL_CTX_new(method);
  if (ctx === null) refused("to create a context (SSL_CTX_new)");
  try {
    const min = (options.minVersion ?? "TLSv1.2") === "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, BigInt(min), null) !== 1n) {
      refused(`minimum version ${options.minVersion}`);
    }
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, BigInt(MODES), null);
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1n, null);
    let ops = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    if (options.ktls) ops |= SSL_OP_ENABLE_KTLS;
    ssl.SSL_CTX_set_options(ctx, ops);
    const readBufferSize = options.readBufferSize ?? DEFAULT_READ_BUFFER_SIZE;
    if (!Number.isInteger(readBufferSize) || readBufferSize < 0) {
      throw new TlsError("TLS_INVALID_ARGUMENT", "readBufferSize is a byte count >= 0");
    }
    if (readBufferSize > 0) {
      ssl.SSL_CTX_set_default_read_buffer_len(ctx, BigInt(readBufferSize));
    }
    return ctx;
  } catch (err) {
    ssl.SSL_CTX_free(ctx);
    throw err;
  }
}

/** A certificate chain and its private key. */
export interface TlsIdentity {
  /**
   * The certificate as PEM text or the path of a PEM file: the leaf first, then the
   * intermediates that lead to a root (the chain sent to clients).
   */
  cert: PemInput;
  /** The private key of the leaf certificate, PEM text or the path of a PEM file. */
  key: PemInput;
  /** Passphrase of an encrypted key. */
  passphrase?: string;
}

/**
 * Installs a certificate chain and its key on a context: the leaf with
 * `SSL_CTX_use_certificate`, each intermediate with `SSL_CTX_add1_chain_cert`, the key
 * with `SSL_CTX_use_PrivateKey`, checked with `SSL_CTX_check_private_key`. Throws a
 * {@link TlsError} (`CERT_UNREADABLE`, `CERT_INVALID`, `KEY_UNREADABLE`, `KEY_INVALID`,
 * `KEY_MISMATCH`) naming the input.
 *
 * @param ctx The context.
 * @param identity Certificate chain and key.
 * @param label Which identity this is, for messages ("" for the default one).
 */
export function useIdentity(ctx: Deno.PointerObject, identity: TlsIdentity, label = ""): void {
  const { ssl, crypto } = openSsl();
  const where = label === "" ? "" : ` (${label})`;
  if (identity === null || typeof identity !== "object") {
    throw new TlsError("TLS_INVALID_ARGUMENT", `a certificate and key are required${where}`);
  }
  const certs = readCertificates(identity.cert, "CERT");
  try {
    if (ssl.SSL_CTX_use_certificate(ctx, certs[0]) !== 1) {
      throw new TlsError(
        "CERT_INVALID",
        `the certificate${where} was refused: ${takeOpenSslErrors()}`,
      );
    }
    for (let i = 1; i < certs.length; i++) {
      if (ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1n, certs[i]) !== 1n) {
        throw new TlsError(
          "CERT_INVALID",
          `chain certificate ${i + 1}${where} was refused: ${takeOpenSslErrors()}`,
        );
      }
    }
  } finally {
    // use_certificate and add1_chain_cert took their own references.
    for (const x of certs) crypto.X509_free(x);
  }
  const key = readPrivateKey(identity.key, identity.passphrase);
  try {
    if (ssl.SSL_CTX_use_PrivateKey(ctx, key) !== 1) {
      const why = takeOpenSslErrors();
      const mismatch = /mismatch/i.test(why);
      throw new TlsError(
        mismatch ? "KEY_MISMATCH" : "KEY_INVALID",
        mismatch
          ? `the private key${where} does not belong to the certificate (${why})`
          : `the private key${where} was refused: ${why}`,
      );
    }
  } finally {
    crypto.EVP_PKEY_free(key);
  }
  if (ssl.SSL_CTX_check_private_key(ctx) !== 1) {
    const why = takeOpenSslErrors();
    throw new TlsError(
      "KEY_MISMATCH",
      `the private key${where} does not belong to the certificate${why !== "" ? ` (${why})` : ""}`,
    );
  }
}

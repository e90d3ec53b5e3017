/**
 * OpenSSL 3 (libssl + libcrypto), bound with `Deno.dlopen` and opened lazily once per
 * isolate, plus the error type of everything TLS ({@link TlsError}) and the reading of
 * OpenSSL's per-thread error queue.
 *
 * Every call here is synchronous (`nonblocking: false`): the sockets under TLS are
 * non-blocking, so `SSL_read`/`SSL_write`/`SSL_do_handshake` return at once with
 * `SSL_ERROR_WANT_READ`/`WANT_WRITE` instead of waiting. Callbacks (ALPN, SNI) therefore run
 * on this thread, inside the call that triggered them.
 *
 * Many OpenSSL "functions" are macros over `SSL_CTX_ctrl`/`SSL_ctrl`/`BIO_ctrl`; they are
 * called through those with the numeric constants below, copied from the 3.x headers (the
 * header that defines each is named next to it). These values are part of OpenSSL's stable
 * ABI and have not changed across 3.x.
 *
 * Types: `long` is `i64` (every supported system is LP64); `size_t` parameters are `usize`
 * and take BigInt values on the hot path (a number leaves V8's fast call path); an `int`
 * result is `i32`.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";

/**
 * A TLS failure with a stable `code`:
 * - `TLS_UNAVAILABLE`: OpenSSL 3 could not be loaded (the message says what to install).
 * - `CERT_UNREADABLE`, `KEY_UNREADABLE`, `CA_UNREADABLE`: a file could not be read.
 * - `CERT_INVALID`, `KEY_INVALID`, `CA_INVALID`: the input holds no usable PEM object
 *   (not PEM, damaged, or an encrypted key with a wrong or missing passphrase).
 * - `KEY_MISMATCH`: the private key does not belong to the certificate.
 * - `TLS_CONFIG`: OpenSSL refused another setting (the message quotes OpenSSL's reason).
 * - `TLS_INVALID_ARGUMENT`: an option has a wrong type or value.
 *
 * @example Tell a missing file from a wrong key
 * ```ts
 * import { TlsError } from "./openssl.ts";
 *
 * const err: unknown = new TlsError("KEY_MISMATCH", "the key does not match the certificate");
 * if (err instanceof TlsError && err.code === "KEY_MISMATCH") console.log(err.message);
 * ```
 */
export class TlsError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code One of the codes listed on the class.
   * @param message Human-readable description.
   * @param options Standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "TlsError";
  }
}

// ---------------------------------------------------------------- constants (3.x headers)

/** ssl.h: `SSL_get_error` results. */
export const SSL_ERROR_NONE = 0;
/** ssl.h */
export const SSL_ERROR_SSL = 1;
/** ssl.h */
export const SSL_ERROR_WANT_READ = 2;
/** ssl.h */
export const SSL_ERROR_WANT_WRITE = 3;
/** ssl.h */
export const SSL_ERROR_SYSCALL = 5;
/** ssl.h */
export const SSL_ERROR_ZERO_RETURN = 6;

/** ssl.h: `SSL_CTX_set_mode` is `SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, mode, NULL)`. */
export const SSL_CTRL_MODE = 33;
/** ssl.h: `SSL_CTX_set_read_ahead`. */
export const SSL_CTRL_SET_READ_AHEAD = 41;
/** ssl.h: `SSL_CTX_set_session_cache_mode`. */
export const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
/** ssl.h: `SSL_CTX_set_tlsext_servername_callback` (through `SSL_CTX_callback_ctrl`). */
export const SSL_CTRL_SET_TLSEXT_SERVERNAME_CB = 53;
/** ssl.h: `SSL_CTX_set_tlsext_servername_arg`. */
export const SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG = 54;
/** ssl.h: `SSL_set_tlsext_host_name` (the SNI a client sends). */
export const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
/** ssl.h: `SSL_CTX_add1_chain_cert` is `SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, x509)`. */
export const SSL_CTRL_CHAIN_CERT = 89;
/** ssl.h: `SSL_CTX_set_min_proto_version`. */
export const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;

/** ssl.h: SSL_write may return after each record instead of after all the bytes. */
export const SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1;
/** ssl.h: a retried write may come from another address (same bytes). */
export const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2;
/** ssl.h: free the read/write buffers of a connection while they are empty. */
export const SSL_MODE_RELEASE_BUFFERS = 0x10;

/** ssl.h: `SSL_OP_BIT(3)`, hand the record layer to the kernel when it can. */
export const SSL_OP_ENABLE_KTLS = 1n << 3n;
/** ssl.h: `SSL_OP_BIT(17)`. */
export const SSL_OP_NO_COMPRESSION = 1n << 17n;
/** ssl.h: `SSL_OP_BIT(30)`. */
export const SSL_OP_NO_RENEGOTIATION = 1n << 30n;

/** ssl.h: `SSL_CTX_set_verify` modes. */
export const SSL_VERIFY_NONE = 0;
/** ssl.h */
export const SSL_VERIFY_PEER = 1;

/** ssl.h: `SSL_get_shutdown` bits. */
export const SSL_SENT_SHUTDOWN = 1;
/** ssl.h */
export const SSL_RECEIVED_SHUTDOWN = 2;

/** tls1.h: the SNI name type. */
export const TLSEXT_NAMETYPE_host_name = 0;
/** tls1.h: servername and ALPN callback results. */
export const SSL_TLSEXT_ERR_OK = 0;
/** tls1.h */
export const SSL_TLSEXT_ERR_ALERT_FATAL = 2;
/** tls1.h */
export const SSL_TLSEXT_ERR_NOACK = 3;
/** ssl.h: `SSL_select_next_proto` found a protocol both sides speak. */
export const OPENSSL_NPN_NEGOTIATED = 1;

/** prov_ssl.h */
export const TLS1_2_VERSION = 0x0303;
/** prov_ssl.h */
export const TLS1_3_VERSION = 0x0304;

/** bio.h: `BIO_reset`. */
export const BIO_CTRL_RESET = 1;
/** bio.h: `BIO_ctrl_pending`. */
export const BIO_CTRL_PENDING = 10;
/** bio.h: `BIO_get_ktls_send`. */
export const BIO_CTRL_GET_KTLS_SEND = 73;
/** bio.h: `BIO_get_ktls_recv`. */
export const BIO_CTRL_GET_KTLS_RECV = 76;
/** bio.h: `BIO_set_mem_eof_return`. */
export const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

/** x509_vfy.h */
export const X509_V_OK = 0;

/** err.h: `ERR_GET_REASON` is `e & ERR_REASON_MASK` (and the lib is `(e >> 23) & 0xff`). */
export const ERR_REASON_MASK = 0x7fffff;
/** sslerr.h: the peer closed the TCP connection without a close_notify alert. */
export const SSL_R_UNEXPECTED_EOF_WHILE_READING = 294;

// ---------------------------------------------------------------- symbols

/** libssl functions this package calls. */
export const LIBSSL_SYMBOLS = {
  OpenSSL_version_num: { parameters: [], result: "u64" },
  TLS_server_method: { parameters: [], result: "pointer" },
  TLS_client_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_callback_ctrl: { parameters: ["pointer", "i32", "function"], result: "i64" },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_use_certificate: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_set_default_verify_paths: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_get_cert_store: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "function"], result: "void" },
  SSL_CTX_set_alpn_select_cb: {
    parameters: ["pointer", "function", "pointer"],
    result: "void",
  },
  /** Returns 0 on success (unlike most of the API). */
  SSL_CTX_set_alpn_protos: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  SSL_CTX_set_default_read_buffer_len: { parameters: ["pointer", "usize"], result: "void" },
  SSL_select_next_proto: {
    parameters: ["pointer", "pointer", "pointer", "u32", "pointer", "u32"],
    result: "i32",
  },

  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_fd: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read_ex: { parameters: ["pointer", "buffer", "usize", "buffer"], result: "i32" },
  /** `SSL_read_ex` into a raw address (the rest of a buffer whose address was taken once). */
  SSL_read_exAddr: {
    name: "SSL_read_ex",
    parameters: ["pointer", "usize", "usize", "buffer"],
    result: "i32",
  },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  /** `SSL_write` from a raw address (an arena slice, or the rest of a buffer). */
  SSL_writeAddr: { name: "SSL_write", parameters: ["pointer", "usize", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_has_pending: { parameters: ["pointer"], result: "i32" },
  SSL_pending: { parameters: ["pointer"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_ctrl: { parameters: ["pointer", "i32", "i64", "buffer"], result: "i64" },
  SSL_set1_host: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get0_param: { parameters: ["pointer"], result: "pointer" },
  SSL_get_verify_result: { parameters: ["pointer"], result: "i64" },
  SSL_get0_alpn_selected: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  SSL_get_servername: { parameters: ["pointer", "i32"], result: "pointer" },
  SSL_set_SSL_CTX: { parameters: ["pointer", "pointer"], result: "pointer" },
  SSL_get_rbio: { parameters: ["pointer"], result: "pointer" },
  SSL_get_wbio: { parameters: ["pointer"], result: "pointer" },
  SSL_set0_rbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set0_wbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_get_current_cipher: { parameters: ["pointer"], result: "pointer" },
  SSL_CIPHER_get_name: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libcrypto functions this package calls. */
export const LIBCRYPTO_SYMBOLS = {
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_clear_error: { parameters: [], result: "void" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_new_mem_buf: { parameters: ["buffer", "i32"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  BIO_up_ref: { parameters: ["pointer"], result: "i32" },
  BIO_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  /** `BIO_ctrl` for small results (`BIO_ctrl_pending`): the low 32 bits, no BigInt per call. */
  BIO_ctrlInt: {
    name: "BIO_ctrl",
    parameters: ["pointer", "i32", "i64", "pointer"],
    result: "i32",
  },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  /** `BIO_write` from a raw address. */
  BIO_writeAddr: { name: "BIO_write", parameters: ["pointer", "usize", "i32"], result: "i32" },
  PEM_read_bio_X509: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "buffer"],
    result: "pointer",
  },
  X509_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  X509_STORE_add_cert: { parameters: ["pointer", "pointer"], result: "i32" },
  X509_verify_cert_error_string: { parameters: ["i64"], result: "pointer" },
  X509_VERIFY_PARAM_set1_ip_asc: { parameters: ["pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound libssl functions. */
export type LibSsl = Deno.DynamicLibrary<typeof LIBSSL_SYMBOLS>["symbols"];
/** The bound libcrypto functions. */
export type LibCrypto = Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS>["symbols"];

/** The loaded OpenSSL: both libraries and where they came from. */
export interface OpenSsl {
  /** libssl. */
  readonly ssl: LibSsl;
  /** libcrypto. */
  readonly crypto: LibCrypto;
  /** Path (or soname) libssl was opened from. */
  readonly sslPath: string;
  /** `OPENSSL_VERSION_NUMBER` of the loaded library (0xMNN00PP0L). */
  readonly versionNumber: number;
}

/**
 * Where OpenSSL 3 is looked for on an operating system, first match wins: the soname on
 * Linux (the dynamic loader searches its cache), Homebrew (Apple Silicon, then Intel) and
 * MacPorts on macOS (never `/usr/lib/libssl.dylib`, which is LibreSSL and aborts when
 * loaded by name), base (`.so.30`) then ports on FreeBSD.
 *
 * @param os An operating system as in `Deno.build.os`.
 * @returns Pairs of libssl and libcrypto paths to try in order.
 *
 * @example
 * ```ts
 * import { openSslCandidates } from "./openssl.ts";
 * console.log(openSslCandidates("linux")[0]); // { ssl: "libssl.so.3", crypto: "libcrypto.so.3" }
 * ```
 */
export function openSslCandidates(os: string = Deno.build.os): { ssl: string; crypto: string }[] {
  switch (os) {
    case "linux":
      return [{ ssl: "libssl.so.3", crypto: "libcrypto.so.3" }];
    case "darwin":
      return ["/opt/homebrew/opt/openssl@3/lib", "/usr/local/opt/openssl@3/lib", "/opt/local/lib"]
        .map((dir) => ({ ssl: `${dir}/libssl.3.dylib`, crypto: `${dir}/libcrypto.3.dylib` }));
    case "freebsd":
      return [
        { ssl: "libssl.so.30", crypto: "libcrypto.so.30" },
        { ssl: "/usr/local/lib/libssl.so.3", crypto: "/usr/local/lib/libcrypto.so.3" },
        { ssl: "libssl.so.3", crypto: "libcrypto.so.3" },
      ];
    default:
      return [];
  }
}

/** What to install for OpenSSL 3 on an operating system. */
function installHint(os: string): string {
  switch (os) {
    case "linux":
      return "install OpenSSL 3's shared libraries (Debian/Ubuntu: apt install libssl3; " +
        "Fedora/RHEL: dnf install openssl-libs; Alpine: apk add libssl3)";
    case "darwin":
      return "install OpenSSL 3 with Homebrew (brew install openssl@3) or MacPorts " +
        "(port install openssl3)";
    case "freebsd":
      return "use FreeBSD 14 or later (OpenSSL 3 in base) or pkg install openssl";
    default:
      return `TLS is not supported on "${os}"`;
  }
}

let instance: OpenSsl | null = null;

/**
 * The process-wide OpenSSL binding, opened on first call; needs `--allow-ffi`. Throws a
 * {@link TlsError} with code `TLS_UNAVAILABLE` naming what to install when no OpenSSL 3
 * can be loaded. Both libraries stay open for the life of the isolate.
 *
 * @returns The bound libraries.
 *
 * @example
 * ```ts
 * import { openSsl } from "./openssl.ts";
 * const { versionNumber } = openSsl();
 * console.log(versionNumber >= 0x30000000); // true
 * ```
 */
export function openSsl(): OpenSsl {
  instance ??= loadOpenSsl(openSslCandidates(), Deno.build.os);
  return instance;
}

/**
 * Opens the first pair of `candidates` that holds OpenSSL 3 (uncached: {@link openSsl}
 * is the shared one). Throws `TLS_UNAVAILABLE` with what to install on `os` and what was
 * tried.
 *
 * @param candidates libssl/libcrypto paths in order.
 * @param os The system the install hint is for.
 * @returns The bound libraries.
 *
 * @example
 * ```ts
 * import { loadOpenSsl, TlsError } from "./openssl.ts";
 * try {
 *   loadOpenSsl([{ ssl: "libnossl.so", crypto: "libnocrypto.so" }], "linux");
 * } catch (err) {
 *   console.log(err instanceof TlsError && err.code); // "TLS_UNAVAILABLE"
 * }
 * ```
 */
export function loadOpenSsl(
  candidates: readonly { ssl: string; crypto: string }[],
  os: string,
): OpenSsl {
  const tried: string[] = [];
  for (const c of candidates) {
    let crypto: Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS> | null = null;
    try {
      // libcrypto first: libssl depends on it and must find the same one.
      crypto = Deno.dlopen(c.crypto, LIBCRYPTO_SYMBOLS);
      const ssl = Deno.dlopen(c.ssl, LIBSSL_SYMBOLS);
      const versionNumber = Number(ssl.symbols.OpenSSL_version_num());
      if (versionNumber < 0x30000000) {
        ssl.close();
        crypto.close();
        tried.push(`${c.ssl}: version 0x${versionNumber.toString(16)} is older than 3.0`);
        continue;
      }
      return { ssl: ssl.symbols, crypto: crypto.symbols, sslPath: c.ssl, versionNumber };
    } catch (err) {
      crypto?.close();
      tried.push(`${c.ssl}: ${(err as Error).message}`);
    }
  }
  throw new TlsError(
    "TLS_UNAVAILABLE",
    `fdws: TLS needs OpenSSL 3, which could not be loaded; ${installHint(os)}` +
      (tried.length > 0 ? ` (tried ${tried.join("; ")})` : ""),
  );
}

// ---------------------------------------------------------------- error queue

const errText = new Uint8Array(256);
const ERR_TEXT_LEN = 256n;
const decoder = new TextDecoder();

/**
 * Empties this thread's OpenSSL error queue and returns its entries as text, oldest first,
 * joined with "; " ("" when it was empty). Call it after every failed OpenSSL call so that
 * a stale entry never makes a later `SSL_get_error` report a failure that did not happen.
 *
 * @returns The queued errors as text.
 *
 * @example
 * ```ts
 * import { takeOpenSslErrors } from "./openssl.ts";
 * console.log(takeOpenSslErrors()); // "" (nothing failed)
 * ```
 */
export function takeOpenSslErrors(): string {
  const { crypto } = openSsl();
  let out = "";
  for (let i = 0; i < 16; i++) {
    const e = crypto.ERR_get_error();
    if (e === 0n) break;
    crypto.ERR_error_string_n(e, errText, ERR_TEXT_LEN);
    const end = errText.indexOf(0);
    const text = decoder.decode(errText.subarray(0, end < 0 ? errText.length : end));
    out = out === "" ? text : `${out}; ${text}`;
  }
  crypto.ERR_clear_error();
  return out;
}

/**
 * Empties the error queue like {@link takeOpenSslErrors} and returns the reason code of
 * its oldest entry (`ERR_GET_REASON`), 0 when empty, with the text in `out[0]`.
 *
 * @param out Receives the text of the queue at index 0.
 * @returns The reason code of the first error.
 */
export function takeOpenSslReason(out: string[]): number {
  const { crypto } = openSsl();
  const first = crypto.ERR_get_error();
  let reason = 0;
  let text = "";
  if (first !== 0n) {
    reason = Number(first & BigInt(ERR_REASON_MASK));
    crypto.ERR_error_string_n(first, errText, ERR_TEXT_LEN);
    const end = errText.indexOf(0);
    text = decoder.decode(errText.subarray(0, end < 0 ? errText.length : end));
  }
  const rest = takeOpenSslErrors();
  out[0] = rest === "" ? text : text === "" ? rest : `${text}; ${rest}`;
  return reason;
}

/**
 * A C string returned by OpenSSL as JS text ("" for NULL).
 *
 * @param p A pointer to a NUL-terminated string, or null.
 * @returns The string.
 */
export function cString(p: Deno.PointerValue): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

const encoder = new TextEncoder();

/**
 * `text` as a NUL-terminated C string.
 *
 * @param text The string.
 * @returns Its UTF-8 bytes followed by a 0 byte.
 */
export function toCString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * The client's TLS configuration: which certificate authorities it trusts (the system
 * store by default, or the `ca` given) and what it offers through ALPN. The server's name
 * is checked per connection (see `TlsTransport.connect`).
 *
 * @module
 */

import {
  openSsl,
  SSL_VERIFY_NONE,
  SSL_VERIFY_PEER,
  takeOpenSslErrors,
  TlsError,
} from "../../ffi/openssl.ts";
import { HTTP_1_1, offerAlpn } from "./alpn.ts";
import type { TlsContext, TlsGeneration } from "./context.ts";
import { newNativeContext, type TlsMinVersion } from "./native.ts";
import { type PemInput, readCertificates } from "./pem.ts";
import { TlsStats } from "./stats.ts";

/** Options of a {@link TlsClientContext}. */
export interface TlsClientOptions {
  /**
   * Certificate authorities to trust instead of the system store: PEM text or a PEM file
   * (several certificates allowed), or a list of them.
   */
  ca?: PemInput | readonly PemInput[];
  /**
   * Verify the server's chain and name. Default true; false accepts any server, which
   * only makes sense against a test server on a trusted network.
   */
  verify?: boolean;
  /** Protocols offered through ALPN. Default `["http/1.1"]`. */
  alpn?: readonly string[];
  /** Oldest accepted version. Default `"TLSv1.2"`. */
  minVersion?: TlsMinVersion;
  /** Let the kernel encrypt after the handshake when it can (Linux). Default true on Linux. */
  ktls?: boolean;
  /**
   * Read-ahead buffer per connection while it holds received records (bytes). Default
   * 64 KiB; 0 keeps OpenSSL's one-record buffer (~17 KB), less memory for connections that
   * hold a partial record, one more `read` per 16 KiB.
   */
  readBufferSize?: number;
}

/** The one generation of a client context: sessions hold their own reference on it. */
class ClientGeneration implements TlsGeneration {
  constructor(readonly ctx: Deno.PointerObject) {}
  enter(): void {}
  leave(): void {}
}

/**
 * A client TLS configuration shared by all its connections.
 *
 * @example Trust the system store (the default)
 * ```ts
 * import { TlsClientContext } from "./client_context.ts";
 * const tls = new TlsClientContext();
 * console.log(tls.verify); // true
 * tls.close();
 * ```
 */
export class TlsClientContext implements TlsContext {
  /** Always `"client"`. */
  readonly role = "client" as const;
  /** Counters of every connection made from this context. */
  readonly stats: TlsStats = new TlsStats();
  /** Whether sessions ask for kernel TLS. */
  readonly ktls: boolean;
  /** Whether servers are verified. */
  readonly verify: boolean;
  #current: ClientGeneration | null;

  /**
   * Builds the native context and loads the trusted certificates. Throws a
   * {@link TlsError} (`CA_UNREADABLE`, `CA_INVALID`) on bad input and `TLS_UNAVAILABLE`
   * without OpenSSL 3.
   *
   * @param options Trust and protocol settings.
   */
  constructor(options: TlsClientOptions = {}) {
    const { ssl, crypto } = openSsl();
    this.ktls = options.ktls ?? Deno.build.os === "linux";
    this.verify = options.verify ?? true;
    const ctx = newNativeContext({
      role: "client",
      minVersion: options.minVersion,
      ktls: this.ktls,
      readBufferSize: options.readBufferSize,
    });
    try {
      ssl.SSL_CTX_set_verify(ctx, this.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, null);
      if (options.ca === undefined) {
        if (ssl.SSL_CTX_set_default_verify_paths(ctx) !== 1) {
          throw new TlsError(
            "TLS_CONFIG",
            `the system certificate store could not be loaded: ${takeOpenSslErrors()}`,
          );
        }
      } else {
        const list = Array.isArray(options.ca) ? options.ca : [options.ca as PemInput];
        const store = ssl.SSL_CTX_get_cert_store(ctx);
        for (const input of list) {
          const certs = readCertificates(input, "CA");
          try {
            for (const x of certs) {
              // A certificate given twice is already there: not an error worth failing on.
              if (crypto.X509_STORE_add_cert(store, x) !== 1) takeOpenSslErrors();
            }
          } finally {
            for (const x of certs) crypto.X509_free(x);
          }
        }
      }
      offerAlpn(ctx, options.alpn ?? [HTTP_1_1]);
    } catch (err) {
      ssl.SSL_CTX_free(ctx);
      throw err;
    }
    this.#current = new ClientGeneration(ctx);
    // A context dropped without close() (e.g. evicted from a cache while a connect still
    // used it) gives its native reference back once unreachable.
    unreachable.register(this, ctx, this);
  }

  /** The generation new sessions are created from. */
  current(): TlsGeneration {
    if (this.#current === null) throw new TlsError("TLS_CLOSED", "the TLS context is closed");
    return this.#current;
  }

  /** Releases the configuration (open sessions keep their reference). Idempotent. */
  close(): void {
    const gen = this.#current;
    this.#current = null;
    if (gen === null) return;
    unreachable.unregister(this);
    openSsl().ssl.SSL_CTX_free(gen.ctx);
  }
}

/** Frees the native context of a TlsClientContext collected without close(). */
const unreachable = new FinalizationRegistry<Deno.PointerObject>((ctx) => {
  openSsl().ssl.SSL_CTX_free(ctx);
});

let shared: TlsClientContext | null = null;

/**
 * The client context `wss://` connections use when given no TLS options: the system
 * store, host name checked, ALPN `http/1.1`. Built on first use, kept for the isolate.
 *
 * @returns The shared context.
 */
export function defaultClientContext(): TlsClientContext {
  shared ??= new TlsClientContext();
  return shared;
}

/**
 * The server's TLS configuration: its certificate chain and key (PEM text or files), more
 * certificates chosen by SNI, ALPN `http/1.1`, TLS 1.2 or later, and reloading without a
 * restart. Everything is read and checked when the context is built, so a missing file or
 * a key that does not match fails `serve()` instead of the first connection.
 *
 * @module
 */

import { openSsl, TlsError } from "../../ffi/openssl.ts";
import { HTTP_1_1, serveAlpn } from "./alpn.ts";
import type { TlsContext, TlsGeneration } from "./context.ts";
import { newNativeContext, type TlsIdentity, type TlsMinVersion, useIdentity } from "./native.ts";
import { ServerGeneration } from "./sni.ts";
import { TlsStats } from "./stats.ts";

/** Options of a {@link TlsServerContext}: the default identity plus the settings below. */
export interface TlsServerOptions extends TlsIdentity {
  /**
   * More certificates, by the server name clients ask for (SNI): exact names
   * (`"example.com"`) or one-label wildcards (`"*.example.com"`). A name not listed gets
   * the default `cert`.
   */
  sni?: Record<string, TlsIdentity>;
  /** Protocols offered through ALPN, in preference order. Default `["http/1.1"]`. */
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

/** The settings a reload may change. */
export type TlsReloadOptions = Partial<
  Pick<TlsServerOptions, "cert" | "key" | "passphrase" | "sni">
>;

/**
 * A server TLS configuration shared by all its connections.
 *
 * @example Serve with a certificate made on the spot, then reload it
 * ```ts
 * import { TlsServerContext } from "./server_context.ts";
 *
 * const dir = Deno.makeTempDirSync();
 * const make = new Deno.Command("openssl", {
 *   args: ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
 *     "-days", "1", "-subj", "/CN=localhost", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
 *   stderr: "null",
 * });
 * make.outputSync();
 * const tls = new TlsServerContext({ cert: `${dir}/cert.pem`, key: `${dir}/key.pem` });
 * tls.reload(); // reads the same files again: new connections get what they hold now
 * console.log(tls.generation); // 2
 * tls.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class TlsServerContext implements TlsContext {
  /** Always `"server"`. */
  readonly role = "server" as const;
  /** Counters of every connection made from this context (across reloads). */
  readonly stats: TlsStats = new TlsStats();
  /** Whether sessions ask for kernel TLS. */
  readonly ktls: boolean;
  #options: TlsServerOptions;
  #current: ServerGeneration | null;
  #generation = 1;

  /**
   * Reads the certificates and keys and builds the native contexts. Throws a
   * {@link TlsError} (`CERT_UNREADABLE`, `KEY_MISMATCH`, ...) on bad input and
   * `TLS_UNAVAILABLE` without OpenSSL 3.
   *
   * @param options Certificate chain, key and settings.
   */
  constructor(options: TlsServerOptions) {
    if (options === null || typeof options !== "object") {
      throw new TlsError("TLS_INVALID_ARGUMENT", "TLS options need a cert and a key");
    }
    if (options.cert === undefined || options.key === undefined) {
      throw new TlsError(
        "TLS_INVALID_ARGUMENT",
        `TLS needs both a certificate and a key (missing: ${
          options.cert === undefined ? "cert" : "key"
        })`,
      );
    }
    this.ktls = options.ktls ?? Deno.build.os === "linux";
    this.#options = { ...options };
    this.#current = this.#build(this.#options);
  }

  /** How many configurations were built (1, then +1 per reload). */
  get generation(): number {
    return this.#generation;
  }

  /** The generation new connections use. */
  current(): TlsGeneration {
    if (this.#current === null) throw new TlsError("TLS_CLOSED", "the TLS context is closed");
    return this.#current;
  }

  /**
   * Builds a new configuration for new connections; connections already open keep theirs.
   * Without arguments it reads the same files again (a renewed certificate written in
   * place); given options replace the previous ones. On bad input it throws like the
   * constructor and the current configuration stays in use.
   *
   * @param options What changes.
   */
  reload(options: TlsReloadOptions = {}): void {
    if (this.#current === null) throw new TlsError("TLS_CLOSED", "the TLS context is closed");
    const next = { ...this.#options, ...options };
    const gen = this.#build(next);
    const old = this.#current;
    this.#current = gen;
    this.#options = next;
    this.#generation++;
    old.retire();
  }

  /**
   * Releases the configuration; sessions still open keep their contexts until they are
   * freed. Idempotent.
   */
  close(): void {
    const gen = this.#current;
    this.#current = null;
    gen?.retire();
  }

  #build(options: TlsServerOptions): ServerGeneration {
    const { ssl } = openSsl();
    const made: Deno.PointerObject[] = [];
    const one = (identity: TlsIdentity, label: string): Deno.PointerObject => {
      const ctx = newNativeContext({
        role: "server",
        minVersion: options.minVersion,
        ktls: this.ktls,
        readBufferSize: options.readBufferSize,
      });
      made.push(ctx);
      useIdentity(ctx, identity, label);
      serveAlpn(ctx, options.alpn ?? [HTTP_1_1]);
      return ctx;
    };
    try {
      const main = one(options, "");
      const named: [string, Deno.PointerObject][] = [];
      for (const [name, identity] of Object.entries(options.sni ?? {})) {
        if (!/^(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/.test(name)) {
          throw new TlsError("TLS_INVALID_ARGUMENT", `"${name}" is not a server name for SNI`);
        }
        named.push([name, one(identity, `SNI ${name}`)]);
      }
      return new ServerGeneration(main, named);
    } catch (err) {
      for (const c of made) ssl.SSL_CTX_free(c);
      throw err;
    }
  }
}

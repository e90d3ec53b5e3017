/**
 * What a TLS transport needs from its configuration: an OpenSSL context to create the
 * connection's session from, and the counters to report to. The server and client
 * contexts implement it.
 *
 * @module
 */

import type { TlsStats } from "./stats.ts";

/**
 * One native `SSL_CTX` (with, on a server, the contexts its SNI names select) as built by
 * one configuration. A reload builds a new generation for new connections; sessions keep
 * theirs, since `SSL_new` takes a reference on the `SSL_CTX`.
 */
export interface TlsGeneration {
  /** The `SSL_CTX*` new sessions are created from. */
  readonly ctx: Deno.PointerObject;
  /**
   * A session of this generation started its handshake: the contexts its callbacks may
   * switch to must stay alive until {@link TlsGeneration.leave}.
   */
  enter(): void;
  /** That session's handshake ended (done, failed or closed). */
  leave(): void;
}

/**
 * The configuration side of a TLS connection.
 *
 * @example Count what a context's connections did
 * ```ts
 * import type { TlsContext } from "./context.ts";
 * function report(context: TlsContext): string {
 *   const s = context.stats;
 *   return `${context.role}: ${s.handshakesCompleted} ok, ${s.handshakesFailed} failed`;
 * }
 * console.log(typeof report); // "function"
 * ```
 */
export interface TlsContext {
  /** Which side of the handshake its sessions play. */
  readonly role: "server" | "client";
  /** Counters shared by every connection of this context. */
  readonly stats: TlsStats;
  /** Whether sessions ask OpenSSL for kernel TLS (Linux only). */
  readonly ktls: boolean;
  /** The generation new sessions are created from. Throws once the context is closed. */
  current(): TlsGeneration;
}

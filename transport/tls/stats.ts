/**
 * Counters of one TLS context, shared by every connection made from it: a failed
 * handshake (a plaintext client, a scanner's garbage, a wrong certificate) costs that
 * connection only, and shows up here.
 *
 * @module
 */

/**
 * What happened on the connections of a TLS context.
 *
 * @example
 * ```ts
 * import { TlsStats } from "./stats.ts";
 * const stats = new TlsStats();
 * stats.handshakeFailed("wrong version number");
 * console.log(stats.handshakesFailed, stats.lastFailure); // 1 "wrong version number"
 * ```
 */
export class TlsStats {
  /** Sessions created (handshakes started). */
  handshakesStarted = 0;
  /** Handshakes that completed. */
  handshakesCompleted = 0;
  /** Handshakes that failed (the connection must then be closed). */
  handshakesFailed = 0;
  /** Reads and writes that failed after the handshake. */
  ioFailures = 0;
  /** Completed handshakes whose writes the kernel encrypts (kTLS). */
  ktlsSessions = 0;
  /** Cause of the most recent failure ("" when none). */
  lastFailure = "";

  /**
   * Counts a failed handshake.
   *
   * @param why Its cause.
   */
  handshakeFailed(why: string): void {
    this.handshakesFailed++;
    this.lastFailure = why;
  }

  /**
   * Counts a failed read or write.
   *
   * @param why Its cause.
   */
  ioFailed(why: string): void {
    this.ioFailures++;
    this.lastFailure = why;
  }
}

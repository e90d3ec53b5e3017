/**
 * The counters a server keeps besides its manager's: `server.stats`, and per worker in
 * `server.workers.stats()`.
 *
 * @module
 */

/**
 * Server counters (connection counters live in `server.manager.stats`).
 *
 * @example
 * ```ts
 * import type { ServerStats } from "./server_stats.ts";
 *
 * function refusals(s: ServerStats): number {
 *   return Object.values(s.responses).reduce((a, b) => a + b, 0);
 * }
 * console.log(refusals({
 *   accepted: 3,
 *   upgraded: 1,
 *   responses: { 403: 1, 426: 1 },
 *   droppedAtLimit: 0,
 *   tlsHandshakeFailures: 0,
 * })); // 2
 * ```
 */
export interface ServerStats {
  /** TCP connections accepted. */
  accepted: number;
  /** WebSockets opened. */
  upgraded: number;
  /** HTTP answers other than 101, by status. */
  responses: Record<number, number>;
  /** Connections closed at accept because the process had no descriptor left. */
  droppedAtLimit: number;
  /** Connections whose TLS handshake failed (a plaintext client, an alert, garbage). */
  tlsHandshakeFailures: number;
}

/**
 * The counters a manager keeps as it runs.
 *
 * @module
 */

/**
 * Counters of a manager, updated as it runs.
 *
 * @example Read them while the server runs
 * ```ts
 * import type { ManagerStats } from "./stats.ts";
 *
 * function summary(s: ManagerStats): string {
 *   return `${s.opened} opened, ${s.messagesIn} in, ${s.messagesOut} out`;
 * }
 * console.log(typeof summary); // "function"
 * ```
 */
export interface ManagerStats {
  /** Connections added since start (accepted upgrades and clients). */
  opened: number;
  /** Connections closed, by close code (1006 for those without a close frame). */
  closedByCode: Record<number, number>;
  /** Complete messages received. */
  messagesIn: number;
  /** Messages queued for sending (a broadcast to N connections counts N). */
  messagesOut: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes accepted by the kernel for sending. */
  bytesOut: number;
  /** Connections closed because they did not read fast enough. */
  slowConsumers: number;
  /** Messages dropped by the `"drop"` policy. */
  droppedMessages: number;
  /** Connections terminated for silence (idle timeout). */
  idleTimeouts: number;
  /** Connections failed for breaking the protocol. */
  protocolErrors: number;
  /** Callbacks that threw. */
  callbackErrors: number;
}

/** A fresh set of counters, all zero. */
export function createStats(): ManagerStats {
  return {
    opened: 0,
    closedByCode: {},
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    slowConsumers: 0,
    droppedMessages: 0,
    idleTimeouts: 0,
    protocolErrors: 0,
    callbackErrors: 0,
  };
}

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
  /** Times freed C heap memory was given back to the system (see `heapTrimInterval`). */
  heapTrims: number;
  /** Seconds those took, summed. */
  heapTrimSeconds: number;
  /** How long the loop's ticks took (reading, dispatching, writing). */
  ticks: TickHistogram;
}

/** Upper bounds (seconds) of the tick duration buckets. */
export const TICK_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
];

/**
 * Loop tick durations, as a Prometheus histogram: `counts[i]` ticks took at most
 * `TICK_BUCKETS[i]` seconds (and more than the bound before), the last slot counts the
 * longer ones.
 *
 * @example
 * ```ts
 * import { createStats } from "./stats.ts";
 *
 * const { ticks } = createStats();
 * console.log(ticks.count, ticks.counts.length); // 0 13
 * ```
 */
export interface TickHistogram {
  /** Ticks measured. */
  count: number;
  /** Their total duration (seconds). */
  sum: number;
  /** The longest (seconds). */
  max: number;
  /** Ticks per bucket of {@link TICK_BUCKETS}, plus one for longer ticks. */
  counts: number[];
}

/** Adds a tick of `seconds` to `h`. */
export function recordTick(h: TickHistogram, seconds: number): void {
  h.count++;
  h.sum += seconds;
  if (seconds > h.max) h.max = seconds;
  let i = 0;
  while (i < TICK_BUCKETS.length && seconds > TICK_BUCKETS[i]) i++;
  h.counts[i]++;
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
    heapTrims: 0,
    heapTrimSeconds: 0,
    ticks: { count: 0, sum: 0, max: 0, counts: new Array(TICK_BUCKETS.length + 1).fill(0) },
  };
}

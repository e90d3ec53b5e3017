/**
 * The counters of a worker group: each worker's, the main thread's and their sums.
 *
 * @module
 */

import type { BackplaneStats } from "../../core/backplane.ts";
import type { ManagerStats } from "../../core/stats.ts";

/**
 * One thread's counters.
 *
 * @typeParam S The server's counters (`ServerStats`).
 */
export interface NodeStats<S> {
  /** WebSocket connections (open or closing). */
  connections: number;
  /** Connections in their HTTP phase. */
  pendingHandshakes: number;
  /** Bytes queued for its connections and not yet written. */
  bufferedBytes: number;
  /** The server's counters. */
  server: S;
  /** The manager's counters. */
  manager: ManagerStats;
  /** The backplane's counters (the cross-worker one, summed with Redis when composed). */
  backplane: BackplaneStats | null;
}

/** Where a worker is in its life. */
export type WorkerState = "starting" | "running" | "restarting" | "stopping" | "stopped";

/** One worker, as the main thread sees it. */
export interface WorkerStats<S> {
  /** The worker's index. */
  index: number;
  /** Its state. */
  state: WorkerState;
  /** Times it was restarted after a crash. */
  restarts: number;
  /** Its counters, or null when it did not answer in time (or is not running). */
  stats: NodeStats<S> | null;
}

/**
 * The whole group: `await server.workers.stats()`.
 *
 * @example A health line
 * ```ts
 * import type { ClusterStats } from "./stats.ts";
 *
 * function line(s: ClusterStats<{ accepted: number }>): string {
 *   const per = s.workers.map((w) => w.stats?.connections ?? "?").join("/");
 *   return `${s.total.connections} connections (${per}), ${s.restarts} restarts`;
 * }
 * console.log(typeof line); // "function"
 * ```
 */
export interface ClusterStats<S> {
  /** Each worker, by index. */
  workers: WorkerStats<S>[];
  /** The sums over the workers that answered. */
  total: NodeStats<S>;
  /** The main thread's own manager and backplane (it publishes, it serves no client). */
  main: { manager: ManagerStats; backplane: BackplaneStats | null };
  /** Restarts of all workers. */
  restarts: number;
}

/**
 * Sums plain counter objects field by field: numbers are added, nested objects (counts by
 * close code, by HTTP status) summed key by key, booleans are true when all are, other
 * values (texts, null) taken from the first item that has one. Fields a newer version adds
 * are summed too.
 *
 * @example
 * ```ts
 * import { sumCounters } from "./stats.ts";
 * const s = sumCounters([
 *   { n: 1, byCode: { 1000: 1 }, up: true, last: null },
 *   { n: 2, byCode: { 1000: 2, 1006: 1 }, up: false, last: "x" },
 * ]);
 * console.log(s); // { n: 3, byCode: { "1000": 3, "1006": 1 }, up: false, last: "x" }
 * ```
 */
export function sumCounters<T>(items: readonly T[]): T {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    for (const [key, value] of Object.entries(item as Record<string, unknown>)) {
      const have = out[key];
      if (typeof value === "number") {
        out[key] = (typeof have === "number" ? have : 0) + value;
      } else if (typeof value === "boolean") {
        out[key] = have === undefined ? value : have === true && value;
      } else if (value !== null && typeof value === "object") {
        out[key] = sumCounters(have === undefined ? [value] : [have, value]);
      } else if (have === undefined || have === null) {
        out[key] = value;
      }
    }
  }
  return out as T;
}

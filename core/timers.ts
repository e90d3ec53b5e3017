/**
 * The manager's time-driven work: closing-handshake deadlines, heartbeats (a ping to quiet
 * connections, termination of silent ones), the timers of other poll targets, and how long
 * the loop may sleep until the next of them is due.
 *
 * Time is the loop's coarse clock (ms), advanced once per tick. Housekeeping runs at most
 * every {@link HOUSEKEEPING_MS}; an idle manager sleeps until something is due instead of
 * waking periodically, which also lets V8 see it idle and give memory back sooner.
 *
 * @module
 */

import type { PollTarget } from "./io_loop.ts";

/** Housekeeping runs at most this often (ms). */
export const HOUSEKEEPING_MS = 250;

/** What the timers need to know of a connection. */
export interface TimedConnection {
  /** CONNECTING, OPEN, CLOSING or CLOSED. */
  readonly state: number;
  /** Loop-clock time of the last byte received. */
  readonly lastSeen: number;
  /** A heartbeat ping is unanswered. */
  pingOutstanding: boolean;
  /** Deadline of the closing handshake (0: none). */
  readonly deadline: number;
  /** Why the connection is being failed. */
  failReason: string;
}

/** What the timers do to connections; the manager implements it. */
export interface TimerActions<C> {
  /** The closing handshake (or the wait for the server's FIN) took too long. */
  closeTimedOut(conn: C): void;
  /** Nothing arrived for the idle timeout. */
  idleTimedOut(conn: C): void;
  /** Quiet for the ping interval: send a heartbeat ping. */
  sendPing(conn: C): void;
  /** A target's timer threw. */
  reportError(error: unknown): void;
}

/** Heartbeat settings (ms; 0 disables). */
export interface HeartbeatOptions {
  /** Ping connections quiet for this long. */
  pingInterval: number;
  /** Terminate connections silent for this long. */
  idleTimeout: number;
}

const OPEN = 1;
const CLOSED = 3;

/**
 * Deadlines and heartbeats of one manager.
 *
 * @example How the loop uses it
 * ```ts
 * import { type TimedConnection, Timers } from "./timers.ts";
 *
 * const timers = new Timers<TimedConnection>({ pingInterval: 30_000, idleTimeout: 60_000 });
 * const conns: TimedConnection[] = [];
 * const sleep = timers.waitTimeout(0, conns.length, new Set()); // -1: no limit
 * console.log(sleep);
 * // ... poll, dispatch ...
 * if (timers.due(250)) {
 *   timers.run(250, conns, new Set(), {
 *     closeTimedOut() {},
 *     idleTimedOut() {},
 *     sendPing() {},
 *     reportError: console.error,
 *   });
 * }
 * ```
 */
export class Timers<C extends TimedConnection> {
  /** Connections in their closing handshake (deadline) or waiting to flush their close. */
  readonly closing: Set<C> = new Set();
  readonly #pingInterval: number;
  readonly #idleTimeout: number;
  /** The heartbeat's period: the shorter of the two settings that are on. */
  readonly #period: number;
  #nextHousekeeping = 0;
  #lastHeartbeat = 0;

  /** @param options Heartbeat settings. */
  constructor(options: HeartbeatOptions) {
    const ping = options.pingInterval;
    const idle = options.idleTimeout;
    this.#pingInterval = ping;
    this.#idleTimeout = idle;
    this.#period = ping > 0 ? Math.min(ping, idle > 0 ? idle : ping) : idle;
  }

  /** True when housekeeping may run at `now`. */
  due(now: number): boolean {
    return now >= this.#nextHousekeeping;
  }

  /**
   * How long the loop may sleep (ms, -1 for no limit): until the next close deadline,
   * target timer or heartbeat is due, never before housekeeping may run again.
   */
  waitTimeout(now: number, connections: number, targets: ReadonlySet<PollTarget>): number {
    let next = Infinity;
    if (this.closing.size > 0) {
      next = this.#nextHousekeeping;
    } else {
      const period = this.#period;
      if (period > 0 && connections > 0) next = this.#lastHeartbeat + Math.min(period, 1000);
      if (targets.size > 64) {
        next = Math.min(next, this.#nextHousekeeping);
      } else {
        for (const t of targets) {
          if (t.onTimer === undefined) continue;
          next = Math.min(next, t.nextTimer?.() ?? this.#nextHousekeeping);
        }
      }
    }
    if (next === Infinity) return -1;
    return Math.max(1, Math.max(next, this.#nextHousekeeping) - now);
  }

  /**
   * Housekeeping at `now`: expired closing handshakes, target timers, heartbeats.
   * @returns true when a heartbeat pass ran (it may have queued pings).
   */
  run(
    now: number,
    connections: readonly C[],
    targets: ReadonlySet<PollTarget>,
    actions: TimerActions<C>,
  ): boolean {
    this.#nextHousekeeping = now + HOUSEKEEPING_MS;
    for (const conn of this.closing) {
      if (conn.state === CLOSED) {
        this.closing.delete(conn);
      } else if (conn.deadline !== 0 && now >= conn.deadline) {
        conn.failReason ||= "close timeout";
        actions.closeTimedOut(conn);
      }
    }
    for (const t of targets) {
      if (t.onTimer === undefined) continue;
      try {
        t.onTimer(now);
      } catch (err) {
        actions.reportError(err);
      }
    }
    const period = this.#period;
    if (period <= 0 || now - this.#lastHeartbeat < Math.min(period, 1000)) return false;
    this.#lastHeartbeat = now;
    const ping = this.#pingInterval;
    const idle = this.#idleTimeout;
    for (const conn of connections.slice()) {
      if (conn.state !== OPEN) continue;
      const quiet = now - conn.lastSeen;
      if (idle > 0 && quiet >= idle) {
        conn.failReason = "idle timeout";
        actions.idleTimedOut(conn);
      } else if (ping > 0 && quiet >= ping && !conn.pingOutstanding) {
        conn.pingOutstanding = true;
        actions.sendPing(conn);
      }
    }
    return true;
  }
}

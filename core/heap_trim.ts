/**
 * Giving memory that bursts freed back to the system.
 *
 * @module
 */

/** Default pause between two trims while the loop is busy, and after a burst (ms). */
export const HEAP_TRIM_MS = 1_000;
/** A trim that took longer than this (ms) doubles the pause, up to {@link MAX_TRIM_MS}. */
const SLOW_TRIM_MS = 5;
/** After a trim that took longer than this (ms), the next one waits for the loop to be quiet. */
const CHEAP_TRIM_MS = 2;
/** Quiet: the loop waited this long (ms) and nothing came. */
export const QUIET_MS = 50;
const MAX_TRIM_MS = 60_000;

/** Where the trimmer counts its work (the manager's stats). */
export interface HeapTrimStats {
  /** Trims done. */
  heapTrims: number;
  /** Seconds they took, summed. */
  heapTrimSeconds: number;
}

/**
 * Runs the C library's `malloc_trim` about once per interval while the loop works, and
 * once an interval after a burst. glibc keeps what is freed in its arenas: after a burst
 * of connections, or while V8 compiles the hot paths on its background thread (whose
 * malloc arena held 4 to 9 MiB of freed compiler memory after 1,000 to 10,000 connections
 * arrived), the process would otherwise stay that much larger for good. A trim walks the
 * arenas and returns their free pages. It runs on a worker thread, one at a time, and is
 * skipped when the loop did nothing since the last one. Under churn it is not free: with
 * permessage-deflate echoing 35,000 messages a second (a 130 MiB heap whose pages are
 * freed and taken again all the time) one took 10 ms of CPU and cost latency. So a trim
 * that took more than 2 ms makes the next one wait until the loop is quiet (it waited
 * 50 ms and nothing came), and one that took more than 5 ms doubles the pause, up to a
 * minute.
 *
 * @example
 * ```ts
 * import { HeapTrimmer } from "./heap_trim.ts";
 *
 * const stats = { heapTrims: 0, heapTrimSeconds: 0 };
 * const trimmer = new HeapTrimmer(1_000, async () => {}, stats);
 * trimmer.touch(0); // the loop worked at t = 0 ms
 * console.log(trimmer.deadline()); // 1000
 * trimmer.maybeRun(500, 0); // not yet
 * trimmer.maybeRun(1_000, 0);
 * await trimmer.settled();
 * console.log(stats.heapTrims, trimmer.deadline()); // 1 Infinity
 * ```
 */
export class HeapTrimmer {
  readonly #trim: (() => Promise<void>) | null;
  readonly #stats: HeapTrimStats;
  readonly #base: number;
  #interval: number;
  #due = Infinity;
  #last = -Infinity;
  #running: Promise<void> | null = null;
  #lastTook = 0;

  /**
   * @param intervalMs Pause between trims; 0 turns trimming off.
   * @param trim The C library's trim, or null where there is none (trimming is off).
   * @param stats Where trims are counted.
   */
  constructor(
    intervalMs: number,
    trim: (() => Promise<void>) | null,
    stats: HeapTrimStats,
  ) {
    this.#trim = intervalMs > 0 ? trim : null;
    this.#stats = stats;
    this.#base = this.#interval = intervalMs;
  }

  /** The loop did work at `now` (ms): memory may have been freed. */
  touch(now: number): void {
    if (this.#due === Infinity && this.#trim !== null) {
      this.#due = Math.max(now, this.#last) + this.#interval;
    }
  }

  /** When the next trim is due (loop clock, ms); Infinity when none is. */
  deadline(): number {
    return this.#due;
  }

  /**
   * How long a loop parking at `now` may wait before it should wake for a trim (ms):
   * Infinity when none is due, at least {@link QUIET_MS} when the next trim waits for quiet.
   */
  wakeIn(now: number): number {
    if (this.#due === Infinity || this.#running !== null) return Infinity;
    const left = this.#due - now;
    return this.#lastTook > CHEAP_TRIM_MS ? Math.max(QUIET_MS, left) : Math.max(1, left);
  }

  /**
   * Starts a trim when one is due at `now` and none is running, unless the last one was
   * costly and the loop has not been quiet (`quietFor`: how long it just waited with
   * nothing to do, 0 when it is working); true when it started.
   */
  maybeRun(now: number, quietFor: number): boolean {
    if (now < this.#due || this.#running !== null) return false;
    if (this.#lastTook > CHEAP_TRIM_MS && quietFor < QUIET_MS) return false;
    this.#last = now;
    this.#due = Infinity;
    const started = performance.now();
    this.#running = this.#trim!().then(() => {
      const took = performance.now() - started;
      this.#lastTook = took;
      this.#stats.heapTrims++;
      this.#stats.heapTrimSeconds += took / 1000;
      this.#interval = took > SLOW_TRIM_MS ? Math.min(this.#interval * 2, MAX_TRIM_MS) : this.#base;
      this.#running = null;
    });
    return true;
  }

  /** Settles when no trim is running (a stopping manager waits for its last one). */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }
}

/**
 * Giving memory that bursts freed back to the system.
 *
 * @module
 */

/** Default pause between two trims while the loop is busy, and after a burst (ms). */
export const HEAP_TRIM_MS = 1_000;
/** A trim that took longer than this (ms) doubles the pause, up to {@link MAX_TRIM_MS}. */
const SLOW_TRIM_MS = 5;
const MAX_TRIM_MS = 60_000;

/**
 * Calls the C library's `malloc_trim` about once per interval while the loop works, and
 * once an interval after a burst. glibc keeps what is freed in its arenas: after a burst
 * of connections, or while V8 compiles the hot paths on its background thread (whose
 * malloc arena held 4 to 9 MiB of freed compiler memory after 1,000 to 10,000 connections
 * arrived), the process would otherwise stay that much larger for good. A trim walks the
 * arenas and returns their free pages; it is skipped when the loop did nothing since the
 * last one, and its pause doubles whenever one takes longer than 5 ms.
 *
 * @example
 * ```ts
 * import { HeapTrimmer } from "./heap_trim.ts";
 *
 * let trims = 0;
 * const trimmer = new HeapTrimmer(1_000, () => void trims++);
 * trimmer.touch(0); // the loop worked at t = 0 ms
 * console.log(trimmer.deadline()); // 1000
 * trimmer.maybeRun(500); // not yet
 * trimmer.maybeRun(1_000);
 * console.log(trims, trimmer.deadline()); // 1 Infinity
 * ```
 */
export class HeapTrimmer {
  readonly #trim: (() => void) | null;
  readonly #base: number;
  #interval: number;
  #due = Infinity;
  #last = -Infinity;
  /** Trims done. */
  trims = 0;
  /** Milliseconds they took, summed. */
  trimMs = 0;

  /**
   * @param intervalMs Pause between trims; 0 turns trimming off.
   * @param trim The C library's trim, or null where there is none (trimming is off).
   */
  constructor(intervalMs: number, trim: (() => void) | null) {
    this.#trim = intervalMs > 0 ? trim : null;
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

  /** Trims when one is due at `now`; true when it did. */
  maybeRun(now: number): boolean {
    if (now < this.#due) return false;
    const started = performance.now();
    this.#trim!();
    const took = performance.now() - started;
    this.trims++;
    this.trimMs += took;
    this.#last = now;
    this.#due = Infinity;
    this.#interval = took > SLOW_TRIM_MS ? Math.min(this.#interval * 2, MAX_TRIM_MS) : this.#base;
    return true;
  }
}

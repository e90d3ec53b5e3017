/**
 * The loop as other descriptors see it: the server's listener and pending handshakes, the
 * client's connecting sockets and a backplane's connection (Redis) are watched by the same
 * poller as the WebSocket connections, through this interface. The manager implements it.
 *
 * @module
 */

/**
 * A descriptor the loop watches besides its WebSocket connections.
 *
 * @example A target that counts its wake-ups
 * ```ts
 * import type { PollTarget } from "./io_loop.ts";
 *
 * let wakeUps = 0;
 * const target: PollTarget = {
 *   fd: 7,
 *   onReady: () => void wakeUps++,
 *   close: () => {},
 * };
 * console.log(target.fd); // 7
 * ```
 */
export interface PollTarget {
  /** Descriptor. */
  readonly fd: number;
  /** The descriptor is ready: bits of `Ready` (poller/poller.ts). */
  onReady(ready: number): void;
  /** Called by housekeeping with the loop's clock (ms); may close itself. */
  onTimer?(now: number): void;
  /**
   * When `onTimer` next has work (loop clock, ms), `Infinity` for none. Without it,
   * `onTimer` runs at every housekeeping pass.
   */
  nextTimer?(): number;
  /** Releases the target when the loop shuts down (it is unregistered already). */
  close(): void;
}

/**
 * What a {@link PollTarget}'s owner may ask of the loop that watches it.
 *
 * @example Watch a descriptor until it becomes readable
 * ```ts
 * import type { IoLoop, PollTarget } from "./io_loop.ts";
 *
 * function watchOnce(loop: IoLoop, fd: number, then: () => void): void {
 *   const target: PollTarget = {
 *     fd,
 *     onReady() {
 *       loop.removeTarget(target);
 *       then();
 *     },
 *     close() {},
 *   };
 *   loop.addTarget(target, 1); // Interest.READABLE
 * }
 * console.log(typeof watchOnce); // "function"
 * ```
 */
export interface IoLoop {
  /** Starts watching `target` for `interest` (bits of `Interest`); throws when it cannot. */
  addTarget(target: PollTarget, interest: number): void;
  /** Changes what `target` is watched for (0: nothing, it stays registered). */
  modifyTarget(target: PollTarget, interest: number): void;
  /** Stops watching `target`; its owner closes the descriptor afterwards. */
  removeTarget(target: PollTarget): void;
  /** A target's `nextTimer()` moved earlier from outside the loop: recompute the sleep. */
  timersChanged(): void;
  /** The loop's clock (ms since the loop was created), brought up to date. */
  now(): number;
  /**
   * A read buffer shared by everything on this loop, for reads whose bytes are consumed
   * (parsed or copied) before the reader returns.
   */
  readonly readBuffer: Uint8Array;
  /** `readBuffer.length` as the BigInt the FFI fast path wants. */
  readonly readLength: bigint;
  /** Reports an exception from a target's callbacks to the application's error handler. */
  reportError(error: unknown): void;
  /** Runs `fn` on the next macrotask turn (after pending I/O, timers and signals). */
  schedule(fn: () => void): void;
}

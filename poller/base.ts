/**
 * What every poller does the same way whatever its mechanism, in the spirit of Python's
 * `selectors.BaseSelector`: the registry bookkeeping, the wait protocol (zero-timeout poll
 * first, then a worker-thread call that {@link Poller.wake} interrupts) and the closing
 * protocol (a kernel object still used by a pending wait is released only once that wait
 * has returned). A mechanism supplies its system calls through the template methods.
 *
 * @module
 */

import { errno, SyscallError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import {
  type Events,
  type InterestSet,
  type Poller,
  PollerError,
  type PollerKind,
} from "./poller.ts";
import { Registry } from "./registry.ts";

/**
 * A timeout in milliseconds as the int that epoll_wait takes (and kqueue reuses before it
 * builds its timespec): rounded up, at most 2^31 - 1, and -1 (no limit) for negative or
 * infinite values.
 *
 * @param ms The timeout given to {@link Poller.wait}.
 * @returns The timeout to pass to the kernel.
 *
 * @example
 * ```ts
 * import { clampTimeout } from "./base.ts";
 * console.log(clampTimeout(1.2), clampTimeout(-5), clampTimeout(Infinity)); // 2 -1 -1
 * ```
 */
export function clampTimeout(ms: number): number {
  if (ms < 0 || !Number.isFinite(ms)) return -1;
  return Math.min(Math.ceil(ms), 0x7fffffff);
}

/**
 * The shared part of every {@link Poller}. A subclass implements the system calls:
 * {@link BasePoller.pollReady} (the zero-timeout poll), {@link BasePoller.waitBlocking} and
 * {@link BasePoller.decodeBlocking} (the worker-thread wait and the reading of its result),
 * {@link BasePoller.signalWake} and {@link BasePoller.releaseKernel}, and the changes of the
 * kernel's interest list ({@link BasePoller.addWatch}, {@link BasePoller.changeWatch},
 * {@link BasePoller.dropWatch}). This class does the rest, so every mechanism follows the
 * same rules: one wait at a time, a wake made before a wait ends it at once, and a close
 * during a wait defers the release of the kernel objects until the wait has returned.
 *
 * @example A poller on a mechanism of your own
 * ```ts
 * import { BasePoller } from "./base.ts";
 *
 * // The mechanism's syscalls and layouts go in the abstract members (pollReady,
 * // waitBlocking, decodeBlocking, signalWake, releaseKernel, addWatch, changeWatch,
 * // dropWatch); the wait/wake/close orchestration and the registry come from the base.
 * abstract class MyPoller extends BasePoller {
 *   readonly kind = "select" as const;
 *   constructor() {
 *     super("my_wait");
 *   }
 * }
 * console.log(typeof MyPoller); // "function"
 * ```
 *
 * @internal
 */
export abstract class BasePoller implements Poller {
  /** The mechanism. */
  abstract readonly kind: PollerKind;
  /** Token, interest and generation of each registered descriptor. */
  protected readonly registry: Registry = new Registry();
  readonly #syscall: string;
  #pending = false;
  #woken = false;
  #closed = false;
  #released = false;

  /**
   * Sets up the bookkeeping; the subclass then creates its kernel objects.
   *
   * @param syscall The name of the waiting system call, reported when the zero-timeout
   *   poll fails.
   */
  protected constructor(syscall: string) {
    this.#syscall = syscall;
  }

  /** True once {@link Poller.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of registered descriptors. */
  get size(): number {
    return this.registry.size;
  }

  /**
   * True while a wait runs on a worker thread: an interest change that the pending call
   * cannot see must wake it (select), and a second wait is refused.
   */
  protected get pending(): boolean {
    return this.#pending;
  }

  /** Starts watching `fd`; see {@link Poller.register}. */
  register(fd: number, token: number, interest: InterestSet): void {
    this.assertOpen();
    const gen = this.registry.add(fd, token, interest);
    try {
      this.addWatch(fd, gen, interest);
    } catch (err) {
      // The kernel refused: the descriptor must not look registered.
      this.registry.remove(fd);
      throw err;
    }
  }

  /** Changes the interest (and token) of `fd`; see {@link Poller.modify}. */
  modify(fd: number, token: number, interest: InterestSet): void {
    this.assertOpen();
    const prev = this.registry.interest[fd];
    const gen = this.registry.update(fd, token, interest);
    // A token change alone is bookkeeping: the kernel is given (fd, generation), not tokens.
    if (prev === interest) return;
    this.changeWatch(fd, gen, prev, interest);
  }

  /** Stops watching `fd`; see {@link Poller.unregister}. */
  unregister(fd: number): void {
    const reg = this.registry;
    if (!reg.has(fd)) return;
    const prev = reg.interest[fd];
    const gen = reg.gen[fd];
    reg.remove(fd);
    // Once released there is no kernel object left to update, and its number may already
    // name another descriptor that a call here would corrupt.
    if (!this.#released) this.dropWatch(fd, gen, prev);
  }

  /** True when `fd` is registered. */
  has(fd: number): boolean {
    return this.registry.has(fd);
  }

  /** Fills `events` with what is ready now; see {@link Poller.pollNow}. */
  pollNow(events: Events): number {
    this.assertOpen();
    // A wake-up found by this poll is what waitAfterPoll() must not miss.
    this.#woken = false;
    const n = this.pollReady(events);
    if (n >= 0) return n;
    // pollReady returns as soon as the call fails, so errno is still the call's own.
    const e = errno();
    if (e === libc().c.errno.EINTR) {
      events.length = 0;
      return 0;
    }
    throw new SyscallError(this.#syscall, e);
  }

  /** Waits for readiness; see {@link Poller.wait}. */
  async wait(events: Events, timeoutMs: number): Promise<number> {
    // Checked before pollNow: a synchronous poll now could consume the wake-up meant for the
    // pending wait (kqueue's EV_CLEAR delivers it once; the eventfd and pipe get drained).
    this.#checkWait(timeoutMs);
    // A wake() made before this wait ends it at once, as it would a pending one.
    const now = this.pollNow(events);
    if (now > 0 || timeoutMs === 0 || this.#woken) return now;
    return await this.#block(events, timeoutMs);
  }

  /**
   * {@link BasePoller.wait} for a caller whose {@link BasePoller.pollNow} has just found
   * nothing: waits without asking the kernel a second time (one system call less each
   * time a busy loop goes idle). A wake-up that poll consumed still ends the wait at once.
   */
  async waitAfterPoll(events: Events, timeoutMs: number): Promise<number> {
    this.#checkWait(timeoutMs);
    this.assertOpen();
    if (timeoutMs === 0 || this.#woken) {
      events.length = 0;
      return 0;
    }
    return await this.#block(events, timeoutMs);
  }

  /** Refuses a second pending wait and a timeout that is not a number. */
  #checkWait(timeoutMs: number): void {
    if (this.#pending) throw new PollerError("BUSY", "a wait is already pending on this poller");
    if (Number.isNaN(timeoutMs)) {
      throw new PollerError("INVALID_ARGUMENT", "wait timeout must be a number of milliseconds");
    }
  }

  async #block(events: Events, timeoutMs: number): Promise<number> {
    this.#pending = true;
    let n: number;
    try {
      n = await this.waitBlocking(events, timeoutMs);
    } finally {
      this.#pending = false;
    }
    if (this.#closed) {
      // close() left the kernel objects open for the call that has just returned.
      this.#release();
      events.length = 0;
      return 0;
    }
    // errno of a call on a worker thread cannot be read here; -1 is almost always EINTR
    // and the caller simply waits again.
    if (n <= 0) {
      events.length = 0;
      return 0;
    }
    return this.decodeBlocking(n, events);
  }

  /** Interrupts a pending wait (or makes the next one return at once); see {@link Poller.wake}. */
  wake(): void {
    if (this.#released) return;
    this.signalWake();
  }

  /** Closes the poller; see {@link Poller.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // The worker thread still uses the kernel objects: wake it, and wait() releases them.
    if (this.#pending) this.wake();
    else this.#release();
  }

  /** Throws `"CLOSED"` once {@link Poller.close} was called. */
  protected assertOpen(): void {
    if (this.#closed) throw new PollerError("CLOSED", "the poller is closed");
  }

  /**
   * Records that the wake-up was among the events being decoded, so that a wait whose
   * zero-timeout poll found only it returns at once instead of blocking. Call it from the
   * decoders, after draining the wake descriptor where the mechanism needs it.
   */
  protected noteWake(): void {
    this.#woken = true;
  }

  /**
   * Asks the kernel, without waiting, what is ready, and decodes it into `events` (which it
   * empties first). Uses buffers of its own: a worker-thread call may be writing into the
   * others.
   *
   * @returns The number of events, or a negative number when the call failed; then it
   *   returns at once, without any other call that could overwrite errno.
   */
  protected abstract pollReady(events: Events): number;

  /**
   * Starts the waiting call on a worker thread (`nonblocking` FFI) with buffers that
   * nothing else touches until the promise settles, sized for `events.capacity`.
   *
   * @param timeoutMs The caller's timeout: not NaN and not 0; negative or infinite means no
   *   limit.
   * @returns The raw result of the call: a count for {@link BasePoller.decodeBlocking}, or
   *   -1.
   */
  protected abstract waitBlocking(events: Events, timeoutMs: number): Promise<number>;

  /**
   * Decodes the `n` entries the last {@link BasePoller.waitBlocking} call returned into
   * `events` (which it empties first).
   *
   * @returns The number of events, stale ones and the wake-up left out.
   */
  protected abstract decodeBlocking(n: number, events: Events): number;

  /** Makes the pending (or the next) waiting call return; the kernel objects are open. */
  protected abstract signalWake(): void;

  /** Closes the kernel objects. Called once, and never while a wait is pending. */
  protected abstract releaseKernel(): void;

  /**
   * Tells the kernel to watch a new registration. Throws when it refuses, after undoing
   * any part already applied; the registry entry is then removed by the caller.
   *
   * @param fd The descriptor.
   * @param generation Its registration's generation, to report back with its events.
   * @param interest `Interest` bits.
   */
  protected abstract addWatch(fd: number, generation: number, interest: InterestSet): void;

  /**
   * Tells the kernel that a registration's interest changed from `prev` to `next` (never
   * equal). The registry already holds `next`.
   *
   * @param fd The descriptor.
   * @param generation Its registration's generation.
   * @param prev The interest the kernel watches now.
   * @param next The interest wanted.
   */
  protected abstract changeWatch(
    fd: number,
    generation: number,
    prev: InterestSet,
    next: InterestSet,
  ): void;

  /**
   * Tells the kernel to stop watching a registration that the registry has just removed.
   * Not called once the kernel objects are released. Failures are ignored: they mean the
   * descriptor was closed already, which ended the kernel's watch.
   *
   * @param fd The descriptor.
   * @param generation The ended registration's generation.
   * @param prev The interest the kernel watched.
   */
  protected abstract dropWatch(fd: number, generation: number, prev: InterestSet): void;

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.releaseKernel();
  }
}

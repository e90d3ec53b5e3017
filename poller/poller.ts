/**
 * The readiness-polling interface shared by every mechanism (epoll, kqueue, select), in
 * the spirit of Python's `selectors` and Rust's `mio`: descriptors are registered with an
 * {@link Interest} and a numeric token, and a wait fills an {@link Events} buffer with
 * (descriptor, token, readiness) triples.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";

/** What a registration asks to be told about. Combine with `|`. */
export const Interest = {
  /** Data (or a connection, or end of stream) can be read. */
  READABLE: 1,
  /** Data can be written without blocking. */
  WRITABLE: 2,
} as const;

/** A bit set of {@link Interest} flags. */
export type InterestSet = number;

/** Readiness bits reported for a descriptor. */
export const Ready = {
  READABLE: 1,
  WRITABLE: 2,
  /** The peer hung up (both directions closed, or EOF reported by the mechanism). */
  HANGUP: 4,
  /** An error is pending on the descriptor (read it with SO_ERROR or the next call). */
  ERROR: 8,
} as const;

/** The mechanisms this package implements. */
export type PollerKind = "epoll" | "kqueue" | "select";

/**
 * A reusable buffer of ready events, filled by {@link Poller.wait}. Parallel typed arrays
 * instead of an object per event keep the hot loop free of allocations.
 *
 * @example Iterate the events of one wait
 * ```ts
 * import { Events, createPoller, Ready } from "../mod.ts";
 * const poller = createPoller();
 * const events = new Events(256);
 * const n = await poller.wait(events, 100);
 * for (let i = 0; i < n; i++) {
 *   if (events.ready[i] & Ready.READABLE) console.log("readable", events.fds[i]);
 * }
 * poller.close();
 * ```
 */
export class Events {
  /** How many events one wait can return. */
  readonly capacity: number;
  /** Number of valid entries after the last wait. */
  length = 0;
  /** The descriptor of each event. */
  readonly fds: Int32Array;
  /** The token given at registration, per event. */
  readonly tokens: Uint32Array;
  /** {@link Ready} bits per event. */
  readonly ready: Uint8Array;

  /**
   * Creates an empty buffer.
   *
   * @param capacity Maximum number of events returned by one wait (default 1024).
   */
  constructor(capacity = 1024) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new PollerError("INVALID_ARGUMENT", `Events capacity must be a positive integer`);
    }
    this.capacity = capacity;
    this.fds = new Int32Array(capacity);
    this.tokens = new Uint32Array(capacity);
    this.ready = new Uint8Array(capacity);
  }

  /** Appends an event; used by pollers. Returns false when full. */
  push(fd: number, token: number, ready: number): boolean {
    if (this.length >= this.capacity) return false;
    const i = this.length++;
    this.fds[i] = fd;
    this.tokens[i] = token;
    this.ready[i] = ready;
    return true;
  }
}

/**
 * Misuse of a poller or a limit of its mechanism. Codes: `"CLOSED"`, `"BUSY"` (a second
 * concurrent wait), `"ALREADY_REGISTERED"`, `"NOT_REGISTERED"`, `"FD_SETSIZE"` (select
 * cannot watch that descriptor), `"UNSUPPORTED"` (mechanism absent on this system),
 * `"INVALID_ARGUMENT"`.
 *
 * @example
 * ```ts
 * import { PollerError } from "../mod.ts";
 * try {
 *   // selectPoller.register(5000, 1, Interest.READABLE);
 * } catch (err) {
 *   if (err instanceof PollerError && err.code === "FD_SETSIZE") console.log("use epoll");
 * }
 * ```
 */
export class PollerError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code One of the codes listed on the class.
   * @param message Human-readable description.
   */
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "PollerError";
  }
}

/**
 * A readiness poller: registers descriptors and waits for them.
 *
 * Waiting never blocks the JS event loop: {@link Poller.wait} first asks the kernel with a
 * zero timeout and only when nothing is ready waits on a worker thread (`nonblocking` FFI),
 * which {@link Poller.wake} interrupts. Events for a descriptor that was unregistered (or
 * closed and reused by a new registration) while they were pending are never delivered.
 */
export interface Poller {
  /** The mechanism. */
  readonly kind: PollerKind;
  /** True once {@link Poller.close} was called. */
  readonly closed: boolean;
  /** Number of registered descriptors. */
  readonly size: number;
  /**
   * Starts watching `fd`.
   * @param fd A descriptor not yet registered here.
   * @param token A 32-bit unsigned number reported back with its events.
   * @param interest {@link Interest} bits; 0 registers without watching anything.
   */
  register(fd: number, token: number, interest: InterestSet): void;
  /** Changes the interest (and token) of a registered descriptor. */
  modify(fd: number, token: number, interest: InterestSet): void;
  /** Stops watching `fd`. Call it before closing the descriptor. Unknown fds are ignored. */
  unregister(fd: number): void;
  /** True when `fd` is registered. */
  has(fd: number): boolean;
  /**
   * Fills `events` with what is ready now, without waiting. Synchronous; must not be called
   * while a {@link Poller.wait} is pending.
   */
  pollNow(events: Events): number;
  /**
   * Waits up to `timeoutMs` (-1: no limit) for readiness and fills `events`.
   * Resolves with the number of events (0 on timeout or wake).
   */
  wait(events: Events, timeoutMs: number): Promise<number>;
  /** Makes a pending (or the next) wait return at once. Safe to call any time. */
  wake(): void;
  /**
   * Releases the kernel objects. A pending wait is woken and resolves with 0; the kernel
   * object is closed once it has returned. Idempotent.
   */
  close(): void;
}

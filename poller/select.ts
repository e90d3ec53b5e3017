/**
 * select(2) poller: portable to every POSIX system, limited to descriptors below
 * FD_SETSIZE (1024). A descriptor at or above the limit is refused with a clear error
 * instead of writing past the end of the fd_set.
 *
 * @module
 */

import { errno, fail, SyscallError } from "../ffi/errno.ts";
import { encodeTimeval, fdClr, fdIsSet, fdSet, fdSetBytes, TIMEVAL_SIZE } from "../ffi/layout.ts";
import { type Libc, libc } from "../ffi/libc.ts";
import {
  type Events,
  Interest,
  type InterestSet,
  type Poller,
  PollerError,
  Ready,
} from "./poller.ts";
import { Registry } from "./registry.ts";

/** The buffers one select() call writes into: never shared between a pending and a sync call. */
class SelectCall {
  readonly read: Uint8Array;
  readonly write: Uint8Array;
  readonly except: Uint8Array;
  readonly timeval = new Uint8Array(TIMEVAL_SIZE);
  readonly timevalView = new DataView(this.timeval.buffer);
  /** Registrations made after this call was prepared have this generation or above. */
  generationLimit = 0;
  constructor(bytes: number) {
    this.read = new Uint8Array(bytes);
    this.write = new Uint8Array(bytes);
    this.except = new Uint8Array(bytes);
  }
}

/**
 * A poller on select(2).
 *
 * @example
 * ```ts ignore
 * import { Events, Interest, SelectPoller } from "../mod.ts";
 * const poller = new SelectPoller();
 * // poller.register(fd, 1, Interest.READABLE);
 * const n = await poller.wait(new Events(), 100);
 * poller.close();
 * ```
 */
export class SelectPoller implements Poller {
  /** Always `"select"`. */
  readonly kind = "select" as const;
  readonly #lib: Libc;
  readonly #registry = new Registry();
  readonly #setSize: number;
  readonly #readSet: Uint8Array;
  readonly #writeSet: Uint8Array;
  readonly #sync: SelectCall;
  readonly #async: SelectCall;
  readonly #wakeRead: number;
  readonly #wakeWrite: number;
  readonly #wakeByte = new Uint8Array([1]);
  readonly #drain = new Uint8Array(64);
  #maxFd: number;
  #pending = false;
  #woken = false;
  #closed = false;
  #released = false;

  /** Creates the poller and its wake-up pipe. Needs `--allow-ffi`. */
  constructor() {
    this.#lib = libc();
    const c = this.#lib.c;
    this.#setSize = c.FD_SETSIZE;
    const bytes = fdSetBytes(c.FD_SETSIZE);
    this.#readSet = new Uint8Array(bytes);
    this.#writeSet = new Uint8Array(bytes);
    this.#sync = new SelectCall(bytes);
    this.#async = new SelectCall(bytes);
    const fds = new Int32Array(2);
    if (this.#lib.pipe2 !== null) {
      if (this.#lib.pipe2(fds, c.O_NONBLOCK | c.O_CLOEXEC) < 0) fail("pipe2");
    } else {
      if (this.#lib.sym.pipe(fds) < 0) fail("pipe");
      for (const fd of fds) {
        this.#lib.sym.fcntl(fd, c.F_SETFL, c.O_NONBLOCK);
        this.#lib.sym.fcntl(fd, c.F_SETFD, c.FD_CLOEXEC);
      }
    }
    this.#wakeRead = fds[0];
    this.#wakeWrite = fds[1];
    if (this.#wakeRead >= this.#setSize) {
      this.#lib.sym.close(fds[0]);
      this.#lib.sym.close(fds[1]);
      throw new PollerError(
        "FD_SETSIZE",
        `select cannot watch descriptor ${fds[0]} (FD_SETSIZE is ${this.#setSize})`,
      );
    }
    fdSet(this.#readSet, this.#wakeRead);
    this.#maxFd = this.#wakeRead;
  }

  /** True once {@link SelectPoller.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of registered descriptors. */
  get size(): number {
    return this.#registry.size;
  }

  /** Starts watching `fd`; descriptors >= FD_SETSIZE are refused (`"FD_SETSIZE"`). */
  register(fd: number, token: number, interest: InterestSet): void {
    this.#assertOpen();
    if (fd >= this.#setSize) {
      throw new PollerError(
        "FD_SETSIZE",
        `select cannot watch descriptor ${fd}: FD_SETSIZE is ${this.#setSize}; use epoll or kqueue`,
      );
    }
    this.#registry.add(fd, token, interest);
    this.#apply(fd, interest);
    if (fd > this.#maxFd) this.#maxFd = fd;
    this.#changed();
  }

  /** Changes the interest of `fd`. */
  modify(fd: number, token: number, interest: InterestSet): void {
    this.#assertOpen();
    const prev = this.#registry.interest[fd];
    this.#registry.update(fd, token, interest);
    if (prev === interest) return;
    this.#apply(fd, interest);
    this.#changed();
  }

  /** Stops watching `fd`. */
  unregister(fd: number): void {
    if (!this.#registry.remove(fd)) return;
    fdClr(this.#readSet, fd);
    fdClr(this.#writeSet, fd);
    if (fd === this.#maxFd) {
      let m = this.#wakeRead;
      const live = this.#registry.live;
      for (let i = fd - 1; i > m; i--) {
        if (live[i]) {
          m = i;
          break;
        }
      }
      this.#maxFd = m;
    }
    // A pending select() still holds the closed descriptor in its sets; wake it so it is
    // not the one to report EBADF once the descriptor is closed.
    this.#changed();
  }

  /** True when `fd` is registered. */
  has(fd: number): boolean {
    return this.#registry.has(fd);
  }

  /** Fills `events` with what is ready now. */
  pollNow(events: Events): number {
    this.#assertOpen();
    const call = this.#sync;
    this.#prepare(call, 0);
    const n = this.#lib.sym.select(
      this.#maxFd + 1,
      call.read,
      call.write,
      call.except,
      call.timeval,
    );
    if (n < 0) {
      const e = errno();
      if (e === this.#lib.c.errno.EINTR) {
        events.length = 0;
        return 0;
      }
      throw new SyscallError("select", e);
    }
    return n === 0 ? (events.length = 0) : this.#decode(call, events);
  }

  /** Waits for readiness; see {@link Poller.wait}. */
  async wait(events: Events, timeoutMs: number): Promise<number> {
    if (this.#pending) throw new PollerError("BUSY", "a wait is already pending on this poller");
    if (Number.isNaN(timeoutMs)) {
      throw new PollerError("INVALID_ARGUMENT", "wait timeout must be a number of milliseconds");
    }
    // A wake() made before this wait ends it at once, as it would a pending one.
    this.#woken = false;
    const now = this.pollNow(events);
    if (now > 0 || timeoutMs === 0 || this.#woken) return now;
    const call = this.#async;
    this.#prepare(call, timeoutMs);
    this.#pending = true;
    let n: number;
    try {
      n = await this.#lib.sym.selectBlocking(
        this.#maxFd + 1,
        call.read,
        call.write,
        call.except,
        timeoutMs < 0 || !Number.isFinite(timeoutMs) ? null : call.timeval,
      );
    } finally {
      this.#pending = false;
    }
    if (this.#closed) {
      this.#release();
      events.length = 0;
      return 0;
    }
    if (n <= 0) {
      events.length = 0;
      return 0;
    }
    return this.#decode(call, events);
  }

  /** Interrupts a pending wait. */
  wake(): void {
    if (this.#released) return;
    // EAGAIN: the pipe is full, so a wake is already pending.
    this.#lib.sym.write(this.#wakeWrite, this.#wakeByte, 1n);
  }

  /** Closes the poller; see {@link Poller.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending) this.wake();
    else this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#lib.sym.close(this.#wakeRead);
    this.#lib.sym.close(this.#wakeWrite);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PollerError("CLOSED", "the poller is closed");
  }

  #apply(fd: number, interest: InterestSet): void {
    if (interest & Interest.READABLE) fdSet(this.#readSet, fd);
    else fdClr(this.#readSet, fd);
    if (interest & Interest.WRITABLE) fdSet(this.#writeSet, fd);
    else fdClr(this.#writeSet, fd);
  }

  #changed(): void {
    if (this.#pending) this.wake();
  }

  #prepare(call: SelectCall, timeoutMs: number): void {
    const bytes = (this.#maxFd >> 3) + 1;
    call.read.set(this.#readSet.subarray(0, bytes));
    call.write.set(this.#writeSet.subarray(0, bytes));
    // Pending errors show up as readable/writable; exceptfds only reports TCP urgent data.
    call.except.fill(0, 0, bytes);
    encodeTimeval(call.timevalView, Math.max(0, timeoutMs));
    call.generationLimit = this.#registry.nextGeneration;
  }

  #decode(call: SelectCall, events: Events): number {
    events.length = 0;
    const reg = this.#registry;
    const last = this.#maxFd;
    const r = call.read;
    const w = call.write;
    if (fdIsSet(r, this.#wakeRead)) {
      this.#woken = true;
      while (this.#lib.sym.read(this.#wakeRead, this.#drain, 64n) > 0) { /* drain */ }
    }
    for (let byte = 0; byte <= last >> 3; byte++) {
      const bits = r[byte] | w[byte];
      if (bits === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if ((bits & (1 << bit)) === 0) continue;
        const fd = (byte << 3) | bit;
        // A descriptor unregistered while this call was pending is not reported, nor one
        // registered since: the bit belongs to the previous owner of that number.
        if (!reg.has(fd) || reg.gen[fd] >= call.generationLimit) continue;
        const interest = reg.interest[fd];
        let ready = 0;
        if (r[byte] & (1 << bit) && interest & Interest.READABLE) ready |= Ready.READABLE;
        if (w[byte] & (1 << bit) && interest & Interest.WRITABLE) ready |= Ready.WRITABLE;
        if (ready !== 0 && !events.push(fd, reg.token[fd], ready)) return events.length;
      }
    }
    return events.length;
  }
}

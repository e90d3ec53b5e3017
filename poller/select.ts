/**
 * select(2) poller: portable to every POSIX system, limited to descriptors below
 * FD_SETSIZE (1024). A descriptor at or above the limit is refused with a clear error
 * instead of writing past the end of the fd_set.
 *
 * @module
 */

import { setNonBlockingCloseOnExec } from "../ffi/descriptor.ts";
import { fail, SyscallError } from "../ffi/errno.ts";
import { encodeTimeval, fdClr, fdIsSet, fdSet, fdSetBytes, TIMEVAL_SIZE } from "../ffi/layout.ts";
import { type Libc, libc } from "../ffi/libc.ts";
import { BasePoller } from "./base.ts";
import { type Events, Interest, type InterestSet, PollerError, Ready } from "./poller.ts";

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
 * ```ts
 * import { Events, Interest, SelectPoller } from "../mod.ts";
 * const poller = new SelectPoller();
 * // poller.register(fd, 1, Interest.READABLE);
 * const n = await poller.wait(new Events(), 100);
 * poller.close();
 * ```
 */
export class SelectPoller extends BasePoller {
  /** Always `"select"`. */
  readonly kind = "select" as const;
  readonly #lib: Libc;
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

  /** Creates the poller and its wake-up pipe. Needs `--allow-ffi`. */
  constructor() {
    super("select");
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
      const e = setNonBlockingCloseOnExec(this.#lib, fds[0]) ||
        setNonBlockingCloseOnExec(this.#lib, fds[1]);
      if (e !== 0) {
        this.#lib.sym.close(fds[0]);
        this.#lib.sym.close(fds[1]);
        throw new SyscallError("fcntl", e, "wake-up pipe");
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

  /** Starts watching `fd`; descriptors >= FD_SETSIZE are refused (`"FD_SETSIZE"`). */
  override register(fd: number, token: number, interest: InterestSet): void {
    // Closed first, as every poller reports it, then the limit: before the registry grows.
    this.assertOpen();
    if (fd >= this.#setSize) {
      throw new PollerError(
        "FD_SETSIZE",
        `select cannot watch descriptor ${fd}: FD_SETSIZE is ${this.#setSize}; use epoll or kqueue`,
      );
    }
    super.register(fd, token, interest);
  }

  /** Sets the bits of `fd` in the master sets; see {@link BasePoller.addWatch}. */
  protected override addWatch(fd: number, _generation: number, interest: InterestSet): void {
    this.#apply(fd, interest);
    if (fd > this.#maxFd) this.#maxFd = fd;
    this.#changed();
  }

  /** Updates the bits of `fd` in the master sets; see {@link BasePoller.changeWatch}. */
  protected override changeWatch(
    fd: number,
    _generation: number,
    _prev: InterestSet,
    next: InterestSet,
  ): void {
    this.#apply(fd, next);
    this.#changed();
  }

  /** Clears the bits of `fd` in the master sets; see {@link BasePoller.dropWatch}. */
  protected override dropWatch(fd: number, _generation: number, _prev: InterestSet): void {
    fdClr(this.#readSet, fd);
    fdClr(this.#writeSet, fd);
    if (fd === this.#maxFd) {
      let m = this.#wakeRead;
      const live = this.registry.live;
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

  /** select() with a zero timeout on copies of the sets; see {@link BasePoller.pollReady}. */
  protected override pollReady(events: Events): number {
    const call = this.#sync;
    this.#prepare(call, 0);
    const n = this.#lib.sym.select(
      this.#maxFd + 1,
      call.read,
      call.write,
      call.except,
      call.timeval,
    );
    if (n <= 0) {
      // Negative: errno is read by the caller, so nothing else may run first.
      if (n === 0) events.length = 0;
      return n;
    }
    return this.#decode(call, events);
  }

  /** select() on a worker thread; see {@link BasePoller.waitBlocking}. */
  protected override waitBlocking(_events: Events, timeoutMs: number): Promise<number> {
    const call = this.#async;
    this.#prepare(call, timeoutMs);
    return this.#lib.sym.selectBlocking(
      this.#maxFd + 1,
      call.read,
      call.write,
      call.except,
      timeoutMs < 0 || !Number.isFinite(timeoutMs) ? null : call.timeval,
    );
  }

  /** Decodes the worker-thread sets; see {@link BasePoller.decodeBlocking}. */
  protected override decodeBlocking(_n: number, events: Events): number {
    return this.#decode(this.#async, events);
  }

  /** Writes a byte to the wake pipe; see {@link BasePoller.signalWake}. */
  protected override signalWake(): void {
    // EAGAIN: the pipe is full, so a wake is already pending.
    this.#lib.sym.write(this.#wakeWrite, this.#wakeByte, 1n);
  }

  /** Closes both ends of the wake pipe; see {@link BasePoller.releaseKernel}. */
  protected override releaseKernel(): void {
    this.#lib.sym.close(this.#wakeRead);
    this.#lib.sym.close(this.#wakeWrite);
  }

  #apply(fd: number, interest: InterestSet): void {
    if (interest & Interest.READABLE) fdSet(this.#readSet, fd);
    else fdClr(this.#readSet, fd);
    if (interest & Interest.WRITABLE) fdSet(this.#writeSet, fd);
    else fdClr(this.#writeSet, fd);
  }

  /** A pending select() works on copies of the sets: it sees a change only once woken. */
  #changed(): void {
    if (this.pending) this.wake();
  }

  #prepare(call: SelectCall, timeoutMs: number): void {
    const bytes = (this.#maxFd >> 3) + 1;
    call.read.set(this.#readSet.subarray(0, bytes));
    call.write.set(this.#writeSet.subarray(0, bytes));
    // Pending errors show up as readable/writable; exceptfds only reports TCP urgent data.
    call.except.fill(0, 0, bytes);
    encodeTimeval(call.timevalView, Math.max(0, timeoutMs));
    call.generationLimit = this.registry.nextGeneration;
  }

  #decode(call: SelectCall, events: Events): number {
    events.length = 0;
    const reg = this.registry;
    const last = this.#maxFd;
    const r = call.read;
    const w = call.write;
    if (fdIsSet(r, this.#wakeRead)) {
      this.noteWake();
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

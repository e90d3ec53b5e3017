/**
 * Linux epoll(7) poller, level-triggered, with an eventfd(2) to wake a pending wait.
 *
 * @module
 */

import { EPOLL, EVENTFD } from "../ffi/constants.ts";
import { errno, fail, SyscallError } from "../ffi/errno.ts";
import { type Arch, epollEventLayout } from "../ffi/layout.ts";
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

type LinuxSymbols = NonNullable<Libc["linux"]>;

/** Marks the eventfd's registration: no real registration has generation 0. */
const WAKE_GENERATION = 0;

/**
 * A poller on Linux epoll.
 *
 * @example Wait for a descriptor to become readable
 * ```ts ignore
 * import { EpollPoller, Events, Interest } from "../mod.ts";
 * const poller = new EpollPoller();
 * // poller.register(fd, 1, Interest.READABLE);
 * const events = new Events();
 * const n = await poller.wait(events, 1000);
 * console.log(n, "ready");
 * poller.close();
 * ```
 */
export class EpollPoller implements Poller {
  /** Always `"epoll"`. */
  readonly kind = "epoll" as const;
  readonly #lib: Libc;
  readonly #sym: LinuxSymbols;
  readonly #registry = new Registry();
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #stride: number;
  readonly #dataIndex: number;
  readonly #ctl: Uint32Array;
  readonly #wakeValue = new BigUint64Array([1n]);
  readonly #drain = new Uint8Array(8);
  #syncBuf: Uint32Array = new Uint32Array(0);
  #asyncBuf: Uint32Array = new Uint32Array(0);
  #pending = false;
  #woken = false;
  #closed = false;
  #released = false;

  /** Creates the epoll instance and its wake-up eventfd. Needs `--allow-ffi`. */
  constructor() {
    this.#lib = libc();
    const sym = this.#lib.linux;
    if (sym === null) {
      throw new PollerError("UNSUPPORTED", "epoll is only available on Linux");
    }
    this.#sym = sym;
    const layout = epollEventLayout(Deno.build.arch as Arch);
    this.#stride = layout.size / 4;
    this.#dataIndex = layout.dataOffset / 4;
    this.#ctl = new Uint32Array(4);
    const epfd = sym.epoll_create1(EPOLL.CLOEXEC);
    if (epfd < 0) fail("epoll_create1");
    const wakeFd = sym.eventfd(0, EVENTFD.NONBLOCK | EVENTFD.CLOEXEC);
    if (wakeFd < 0) {
      const e = errno();
      this.#lib.sym.close(epfd);
      throw new PollerError("UNSUPPORTED", `eventfd failed with errno ${e}`);
    }
    this.#epfd = epfd;
    this.#wakeFd = wakeFd;
    if (this.#ctlCall(EPOLL.CTL_ADD, wakeFd, EPOLL.IN, wakeFd, WAKE_GENERATION) < 0) {
      const e = errno();
      this.#lib.sym.close(wakeFd);
      this.#lib.sym.close(epfd);
      throw new PollerError("UNSUPPORTED", `epoll_ctl(eventfd) failed with errno ${e}`);
    }
  }

  /** True once {@link EpollPoller.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of registered descriptors. */
  get size(): number {
    return this.#registry.size;
  }

  /** Starts watching `fd`; see {@link Poller.register}. */
  register(fd: number, token: number, interest: InterestSet): void {
    this.#assertOpen();
    const gen = this.#registry.add(fd, token, interest);
    if (this.#ctlCall(EPOLL.CTL_ADD, fd, toEpoll(interest), fd, gen) < 0) {
      const e = errno();
      this.#registry.remove(fd);
      throw new SyscallError("epoll_ctl", e, `register fd ${fd}`);
    }
  }

  /** Changes the interest of `fd`; see {@link Poller.modify}. */
  modify(fd: number, token: number, interest: InterestSet): void {
    this.#assertOpen();
    const prev = this.#registry.interest[fd];
    const gen = this.#registry.update(fd, token, interest);
    if (prev === interest) return;
    if (this.#ctlCall(EPOLL.CTL_MOD, fd, toEpoll(interest), fd, gen) < 0) {
      throw new SyscallError("epoll_ctl", errno(), `modify fd ${fd}`);
    }
  }

  /** Stops watching `fd`; see {@link Poller.unregister}. */
  unregister(fd: number): void {
    if (!this.#registry.remove(fd) || this.#released) return;
    // ENOENT/EBADF here mean the descriptor was already closed, which removed it from the
    // interest list: nothing is left to undo.
    this.#sym.epoll_ctl(this.#epfd, EPOLL.CTL_DEL, fd, this.#ctl);
  }

  /** True when `fd` is registered. */
  has(fd: number): boolean {
    return this.#registry.has(fd);
  }

  /** Fills `events` with what is ready now; see {@link Poller.pollNow}. */
  pollNow(events: Events): number {
    this.#assertOpen();
    if (this.#syncBuf.length < events.capacity * this.#stride) {
      this.#syncBuf = new Uint32Array(events.capacity * this.#stride);
    }
    const n = this.#sym.epoll_wait(this.#epfd, this.#syncBuf, events.capacity, 0);
    if (n < 0) {
      const e = errno();
      if (e === this.#lib.c.errno.EINTR) {
        events.length = 0;
        return 0;
      }
      throw new SyscallError("epoll_wait", e);
    }
    return this.#decode(this.#syncBuf, n, events);
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
    if (this.#asyncBuf.length < events.capacity * this.#stride) {
      this.#asyncBuf = new Uint32Array(events.capacity * this.#stride);
    }
    this.#pending = true;
    let n: number;
    try {
      n = await this.#sym.epoll_waitBlocking(
        this.#epfd,
        this.#asyncBuf,
        events.capacity,
        clampTimeout(timeoutMs),
      );
    } finally {
      this.#pending = false;
    }
    if (this.#closed) {
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
    return this.#decode(this.#asyncBuf, n, events);
  }

  /** Interrupts a pending wait; see {@link Poller.wake}. */
  wake(): void {
    if (this.#released) return;
    // EAGAIN means the counter is already non-zero: a wake is already pending.
    this.#lib.sym.write(this.#wakeFd, this.#wakeValue, 8n);
  }

  /** Closes the poller; see {@link Poller.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending) {
      this.wake();
    } else {
      this.#release();
    }
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#lib.sym.close(this.#wakeFd);
    this.#lib.sym.close(this.#epfd);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PollerError("CLOSED", "the poller is closed");
  }

  #ctlCall(op: number, fd: number, mask: number, dataFd: number, gen: number): number {
    const ctl = this.#ctl;
    ctl[0] = mask;
    if (this.#dataIndex === 1) {
      ctl[1] = dataFd;
      ctl[2] = gen;
    } else {
      ctl[2] = dataFd;
      ctl[3] = gen;
    }
    return this.#sym.epoll_ctl(this.#epfd, op, fd, ctl);
  }

  #decode(raw: Uint32Array, n: number, events: Events): number {
    events.length = 0;
    const stride = this.#stride;
    const di = this.#dataIndex;
    const reg = this.#registry;
    for (let i = 0; i < n; i++) {
      const base = i * stride;
      const mask = raw[base];
      const fd = raw[base + di];
      const gen = raw[base + di + 1];
      if (gen === WAKE_GENERATION) {
        this.#woken = true;
        this.#lib.sym.read(this.#wakeFd, this.#drain, 8n);
        continue;
      }
      if (!reg.current(fd, gen)) continue;
      let ready = 0;
      if (mask & EPOLL.IN) ready |= Ready.READABLE;
      if (mask & EPOLL.OUT) ready |= Ready.WRITABLE;
      if (mask & EPOLL.HUP) ready |= Ready.HANGUP | Ready.READABLE;
      if (mask & EPOLL.ERR) ready |= Ready.ERROR | Ready.READABLE;
      events.push(fd, reg.token[fd], ready);
    }
    return events.length;
  }
}

function toEpoll(interest: InterestSet): number {
  let mask = 0;
  if (interest & Interest.READABLE) mask |= EPOLL.IN;
  if (interest & Interest.WRITABLE) mask |= EPOLL.OUT;
  return mask;
}

/** epoll_wait takes an int of milliseconds; -1 waits without limit. */
export function clampTimeout(ms: number): number {
  if (ms < 0 || !Number.isFinite(ms)) return -1;
  return Math.min(Math.ceil(ms), 0x7fffffff);
}

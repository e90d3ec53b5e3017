/**
 * Linux epoll(7) poller, level-triggered, with an eventfd(2) to wake a pending wait.
 *
 * @module
 */

import { EPOLL, EVENTFD } from "../ffi/constants.ts";
import { errno, fail, SyscallError } from "../ffi/errno.ts";
import { type Arch, epollEventLayout } from "../ffi/layout.ts";
import { type Libc, libc } from "../ffi/libc.ts";
import { BasePoller, clampTimeout } from "./base.ts";
import { type Events, Interest, type InterestSet, PollerError, Ready } from "./poller.ts";

// Re-exported: it was defined here before the shared base existed.
export { clampTimeout };

type LinuxSymbols = NonNullable<Libc["linux"]>;

/** Marks the eventfd's registration: no real registration has generation 0. */
const WAKE_GENERATION = 0;

/**
 * A poller on Linux epoll.
 *
 * @example Wait for a descriptor to become readable
 * ```ts
 * import { EpollPoller, Events, Interest } from "../mod.ts";
 * const poller = new EpollPoller();
 * // poller.register(fd, 1, Interest.READABLE);
 * const events = new Events();
 * const n = await poller.wait(events, 1000);
 * console.log(n, "ready");
 * poller.close();
 * ```
 */
export class EpollPoller extends BasePoller {
  /** Always `"epoll"`. */
  readonly kind = "epoll" as const;
  readonly #lib: Libc;
  readonly #sym: LinuxSymbols;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #stride: number;
  readonly #dataIndex: number;
  readonly #ctl: Uint32Array;
  readonly #wakeValue = new BigUint64Array([1n]);
  readonly #drain = new Uint8Array(8);
  #syncBuf: Uint32Array = new Uint32Array(0);
  #asyncBuf: Uint32Array = new Uint32Array(0);

  /** Creates the epoll instance and its wake-up eventfd. Needs `--allow-ffi`. */
  constructor() {
    super("epoll_wait");
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

  /** EPOLL_CTL_ADD with (fd, generation) as the event's data; see {@link BasePoller.addWatch}. */
  protected override addWatch(fd: number, generation: number, interest: InterestSet): void {
    if (this.#ctlCall(EPOLL.CTL_ADD, fd, toEpoll(interest), fd, generation) < 0) {
      throw new SyscallError("epoll_ctl", errno(), `register fd ${fd}`);
    }
  }

  /** EPOLL_CTL_MOD; see {@link BasePoller.changeWatch}. */
  protected override changeWatch(
    fd: number,
    generation: number,
    _prev: InterestSet,
    next: InterestSet,
  ): void {
    if (this.#ctlCall(EPOLL.CTL_MOD, fd, toEpoll(next), fd, generation) < 0) {
      throw new SyscallError("epoll_ctl", errno(), `modify fd ${fd}`);
    }
  }

  /** EPOLL_CTL_DEL; see {@link BasePoller.dropWatch}. */
  protected override dropWatch(fd: number, _generation: number, _prev: InterestSet): void {
    // ENOENT/EBADF here mean the descriptor was already closed, which removed it from the
    // interest list: nothing is left to undo.
    this.#sym.epoll_ctl(this.#epfd, EPOLL.CTL_DEL, fd, this.#ctl);
  }

  /** epoll_wait with a zero timeout; see {@link BasePoller.pollReady}. */
  protected override pollReady(events: Events): number {
    if (this.#syncBuf.length < events.capacity * this.#stride) {
      this.#syncBuf = new Uint32Array(events.capacity * this.#stride);
    }
    const n = this.#sym.epoll_wait(this.#epfd, this.#syncBuf, events.capacity, 0);
    return n < 0 ? n : this.#decode(this.#syncBuf, n, events);
  }

  /** epoll_wait on a worker thread; see {@link BasePoller.waitBlocking}. */
  protected override waitBlocking(events: Events, timeoutMs: number): Promise<number> {
    if (this.#asyncBuf.length < events.capacity * this.#stride) {
      this.#asyncBuf = new Uint32Array(events.capacity * this.#stride);
    }
    return this.#sym.epoll_waitBlocking(
      this.#epfd,
      this.#asyncBuf,
      events.capacity,
      clampTimeout(timeoutMs),
    );
  }

  /** Decodes the worker-thread buffer; see {@link BasePoller.decodeBlocking}. */
  protected override decodeBlocking(n: number, events: Events): number {
    return this.#decode(this.#asyncBuf, n, events);
  }

  /** Adds 1 to the eventfd counter; see {@link BasePoller.signalWake}. */
  protected override signalWake(): void {
    // EAGAIN means the counter is already non-zero: a wake is already pending.
    this.#lib.sym.write(this.#wakeFd, this.#wakeValue, 8n);
  }

  /** Closes the eventfd and the epoll instance; see {@link BasePoller.releaseKernel}. */
  protected override releaseKernel(): void {
    this.#lib.sym.close(this.#wakeFd);
    this.#lib.sym.close(this.#epfd);
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
    const reg = this.registry;
    for (let i = 0; i < n; i++) {
      const base = i * stride;
      const mask = raw[base];
      const fd = raw[base + di];
      const gen = raw[base + di + 1];
      if (gen === WAKE_GENERATION) {
        this.noteWake();
        // Level-triggered: an undrained eventfd would stay ready and end every later wait.
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

/**
 * BSD kqueue(2) poller (macOS, FreeBSD), level-triggered, with an EVFILT_USER event to wake
 * a pending wait.
 *
 * Each registration is one EVFILT_READ and/or one EVFILT_WRITE knote. Its `udata` carries
 * the descriptor in the low 32 bits and the {@link Registry} generation in the high 32 bits,
 * so an event that was already queued for a registration that has since ended (the
 * descriptor closed and its number reused) is recognised and dropped.
 *
 * The pure parts (the change list of an interest transition, the translation of returned
 * kevents) are exported so that they can be tested byte by byte on any system.
 *
 * @module
 */

import { KQUEUE } from "../ffi/constants.ts";
import { setCloseOnExec } from "../ffi/descriptor.ts";
import { errno, fail, SyscallError } from "../ffi/errno.ts";
import {
  decodeKevent,
  encodeKevent,
  encodeTimespec,
  type KeventLayout,
  keventLayout,
  TIMESPEC_SIZE,
  writeKevent,
} from "../ffi/layout.ts";
import { type Libc, libc } from "../ffi/libc.ts";
import { BasePoller, clampTimeout } from "./base.ts";
import { type Events, Interest, type InterestSet, PollerError, Ready } from "./poller.ts";
import type { Registry } from "./registry.ts";

type BsdSymbols = NonNullable<Libc["bsd"]>;

/** The EVFILT_USER identifier reserved for wake-ups. */
const WAKE_IDENT = 0;

/** One interest transition changes at most the read and the write filter. */
const MAX_CHANGES = 2;

/**
 * EVFILT_USER for a system: -10 on macOS, -11 on FreeBSD (<sys/event.h>).
 *
 * @param os `Deno.build.os` by default.
 * @returns The filter number.
 *
 * @example
 * ```ts
 * import { evfiltUser } from "./kqueue.ts";
 * console.log(evfiltUser("darwin"), evfiltUser("freebsd")); // -10 -11
 * ```
 */
export function evfiltUser(os: string = Deno.build.os): number {
  return os === "darwin" ? KQUEUE.EVFILT_USER_DARWIN : KQUEUE.EVFILT_USER_FREEBSD;
}

/**
 * Writes the change of one descriptor filter as `struct kevent` entry `index` of `view`,
 * with `udata` = generation << 32 | fd (through {@link writeKevent}, which keeps a
 * generation above 2^21 exact where a JS number for the whole `udata` would not).
 *
 * @example
 * ```ts
 * import { decodeKevent, keventLayout } from "../ffi/layout.ts";
 * import { writeChange } from "./kqueue.ts";
 * const layout = keventLayout("darwin");
 * const view = new DataView(new ArrayBuffer(layout.size));
 * writeChange(view, 0, layout, 7, 3, -1, 0x0001 | 0x0040);
 * console.log(decodeKevent(view, 0, layout).udata === 3 * 2 ** 32 + 7); // true
 * ```
 */
export function writeChange(
  view: DataView,
  index: number,
  layout: KeventLayout,
  fd: number,
  generation: number,
  filter: number,
  flags: number,
): void {
  writeKevent(view, index, layout, fd, filter, flags, 0, 0, fd, generation);
}

/**
 * Writes the kevent changes that take descriptor `fd` from interest `prev` to `next`,
 * starting at entry `start` of `view`: EV_ADD for each filter gained, EV_DELETE for each
 * filter lost, all with EV_RECEIPT so that kevent(2) reports the result of every change in
 * the event list instead of failing the whole call at the first error.
 *
 * @returns The number of entries written (0, 1 or 2).
 *
 * @example Register for reading only
 * ```ts
 * import { keventLayout } from "../ffi/layout.ts";
 * import { Interest } from "./poller.ts";
 * import { encodeInterestChanges } from "./kqueue.ts";
 * const layout = keventLayout("freebsd");
 * const view = new DataView(new ArrayBuffer(2 * layout.size));
 * console.log(encodeInterestChanges(view, 0, layout, 9, 1, 0, Interest.READABLE)); // 1
 * ```
 */
export function encodeInterestChanges(
  view: DataView,
  start: number,
  layout: KeventLayout,
  fd: number,
  generation: number,
  prev: InterestSet,
  next: InterestSet,
): number {
  const add = KQUEUE.EV_ADD | KQUEUE.EV_RECEIPT;
  const del = KQUEUE.EV_DELETE | KQUEUE.EV_RECEIPT;
  const changed = prev ^ next;
  let i = start;
  if (changed & Interest.READABLE) {
    const flags = next & Interest.READABLE ? add : del;
    writeChange(view, i++, layout, fd, generation, KQUEUE.EVFILT_READ, flags);
  }
  if (changed & Interest.WRITABLE) {
    const flags = next & Interest.WRITABLE ? add : del;
    writeChange(view, i++, layout, fd, generation, KQUEUE.EVFILT_WRITE, flags);
  }
  return i - start;
}

/** The outcome of a batch of EV_RECEIPT changes, as read by {@link readReceipts}. */
export interface ReceiptResult {
  /** errno of the first addition that failed, 0 when every addition succeeded. */
  addErrno: number;
  /** The {@link Interest} bits whose EV_ADD failed. */
  failedAdds: InterestSet;
}

/**
 * Reads the receipts kevent(2) returned for changes written by
 * {@link encodeInterestChanges}. The kernel overwrites each receipt's flags with EV_ERROR
 * and puts the change's errno (0 on success) in `data`, so an addition is told from a
 * deletion by its filter and `added`. Failed deletions are ignored: ENOENT and EBADF both
 * mean the filter is already gone (closing a descriptor removes its knotes).
 *
 * @param view The event list kevent(2) filled.
 * @param count The number of entries it returned.
 * @param layout The kevent layout.
 * @param added The {@link Interest} bits the change list added (`next & ~prev`).
 * @param out Receives the result.
 * @returns `out`.
 *
 * @example
 * ```ts
 * import { encodeKevent, keventLayout } from "../ffi/layout.ts";
 * import { readReceipts } from "./kqueue.ts";
 * const layout = keventLayout("darwin");
 * const view = new DataView(new ArrayBuffer(layout.size));
 * // The kernel rewrote an EV_ADD of EVFILT_READ as EV_ERROR with data = EBADF (9).
 * encodeKevent(view, 0, layout, { ident: 5, filter: -1, flags: 0x4000, fflags: 0, data: 9, udata: 5 });
 * console.log(readReceipts(view, 1, layout, 1, { addErrno: 0, failedAdds: 0 }));
 * // { addErrno: 9, failedAdds: 1 }
 * ```
 */
export function readReceipts(
  view: DataView,
  count: number,
  layout: KeventLayout,
  added: InterestSet,
  out: ReceiptResult,
): ReceiptResult {
  out.addErrno = 0;
  out.failedAdds = 0;
  for (let i = 0; i < count; i++) {
    const o = i * layout.size;
    if ((view.getUint16(o + layout.flags, true) & KQUEUE.EV_ERROR) === 0) continue;
    // errno values are small: the low half of the 64-bit data field holds all of it.
    const err = view.getInt32(o + layout.data, true);
    if (err === 0) continue;
    const filter = view.getInt16(o + layout.filter, true);
    const bit = filter === KQUEUE.EVFILT_READ
      ? Interest.READABLE
      : filter === KQUEUE.EVFILT_WRITE
      ? Interest.WRITABLE
      : 0;
    if ((bit & added) === 0) continue;
    out.failedAdds |= bit;
    if (out.addErrno === 0) out.addErrno = err;
  }
  return out;
}

/** An event translated by {@link translateKevent}. */
export interface KqueueEvent {
  /** The descriptor. */
  fd: number;
  /** Its registration's token. */
  token: number;
  /** {@link Ready} bits. */
  ready: number;
}

/** What {@link translateKevent} found in a kevent. */
export const KeventKind = {
  /** For an ended registration, a filter no longer wanted, or unknown: drop it. */
  STALE: 0,
  /** A readiness event of a current registration: `out` was filled. */
  READY: 1,
  /** The EVFILT_USER wake-up. */
  WAKE: 2,
} as const;

/**
 * Turns kevent entry `index` of `view` into (fd, token, ready) for the current
 * registrations of `registry`, without allocating.
 *
 * EVFILT_READ gives READABLE, EVFILT_WRITE gives WRITABLE (each only while the interest
 * still asks for it: a queued event may predate a modify). EV_EOF adds HANGUP|READABLE, and
 * ERROR as well when `fflags` carries a socket error; EV_ERROR gives ERROR|READABLE.
 *
 * @returns A {@link KeventKind}; `out` is written only for `READY`.
 *
 * @example
 * ```ts
 * import { keventLayout } from "../ffi/layout.ts";
 * import { Registry } from "./registry.ts";
 * import { KeventKind, translateKevent, writeChange } from "./kqueue.ts";
 * const layout = keventLayout("darwin");
 * const registry = new Registry();
 * const gen = registry.add(5, 42, 1);
 * const view = new DataView(new ArrayBuffer(layout.size));
 * writeChange(view, 0, layout, 5, gen, -1, 0); // as the kernel returns it
 * const out = { fd: 0, token: 0, ready: 0 };
 * console.log(translateKevent(view, 0, layout, -10, registry, out) === KeventKind.READY, out);
 * ```
 */
export function translateKevent(
  view: DataView,
  index: number,
  layout: KeventLayout,
  userFilter: number,
  registry: Registry,
  out: KqueueEvent,
): number {
  const o = index * layout.size;
  const filter = view.getInt16(o + layout.filter, true);
  if (filter === userFilter) return KeventKind.WAKE;
  const fd = view.getUint32(o + layout.udata, true);
  const gen = view.getUint32(o + layout.udata + 4, true);
  if (!registry.current(fd, gen)) return KeventKind.STALE;
  const interest = registry.interest[fd];
  let ready = 0;
  if (filter === KQUEUE.EVFILT_READ) {
    if (interest & Interest.READABLE) ready = Ready.READABLE;
  } else if (filter === KQUEUE.EVFILT_WRITE) {
    if (interest & Interest.WRITABLE) ready = Ready.WRITABLE;
  } else {
    return KeventKind.STALE;
  }
  const flags = view.getUint16(o + layout.flags, true);
  if (flags & KQUEUE.EV_EOF) {
    ready |= Ready.HANGUP | Ready.READABLE;
    if (view.getUint32(o + layout.fflags, true) !== 0) ready |= Ready.ERROR;
  }
  if (flags & KQUEUE.EV_ERROR) ready |= Ready.ERROR | Ready.READABLE;
  if (ready === 0) return KeventKind.STALE;
  out.fd = fd;
  out.token = registry.token[fd];
  out.ready = ready;
  return KeventKind.READY;
}

/**
 * Translates the `count` kevents of `view` into `events` (which it empties first), merging
 * the read and write events of one descriptor into a single entry as epoll reports them.
 *
 * @param slots Scratch space indexed by descriptor, all zero on entry and left all zero;
 *   descriptors beyond its length are reported without merging.
 * @param scratch Reused for each translated event.
 * @returns True when the EVFILT_USER wake-up was among the events.
 *
 * @example
 * ```ts
 * import { keventLayout } from "../ffi/layout.ts";
 * import { Events } from "./poller.ts";
 * import { Registry } from "./registry.ts";
 * import { decodeKevents, writeChange } from "./kqueue.ts";
 * const layout = keventLayout("freebsd");
 * const registry = new Registry();
 * const gen = registry.add(3, 7, 3);
 * const view = new DataView(new ArrayBuffer(2 * layout.size));
 * writeChange(view, 0, layout, 3, gen, -1, 0);
 * writeChange(view, 1, layout, 3, gen, -2, 0);
 * const events = new Events(2);
 * decodeKevents(view, 2, layout, -11, registry, events, new Int32Array(64), { fd: 0, token: 0, ready: 0 });
 * console.log(events.length, events.ready[0]); // 1 3
 * ```
 */
export function decodeKevents(
  view: DataView,
  count: number,
  layout: KeventLayout,
  userFilter: number,
  registry: Registry,
  events: Events,
  slots: Int32Array,
  scratch: KqueueEvent,
): boolean {
  events.length = 0;
  let woken = false;
  for (let i = 0; i < count; i++) {
    const kind = translateKevent(view, i, layout, userFilter, registry, scratch);
    if (kind === KeventKind.WAKE) {
      woken = true;
      continue;
    }
    if (kind !== KeventKind.READY) continue;
    const fd = scratch.fd;
    if (fd < slots.length && slots[fd] !== 0) {
      events.ready[slots[fd] - 1] |= scratch.ready;
      continue;
    }
    if (!events.push(fd, scratch.token, scratch.ready)) break;
    if (fd < slots.length) slots[fd] = events.length;
  }
  for (let i = 0; i < events.length; i++) {
    const fd = events.fds[i];
    if (fd < slots.length) slots[fd] = 0;
  }
  return woken;
}

/**
 * A poller on BSD kqueue (macOS, FreeBSD), level-triggered like {@link Poller} requires.
 *
 * The read and write filters of a descriptor are separate knotes; their events are merged
 * into one {@link Events} entry per descriptor, as epoll reports them. Interest changes are
 * applied by a synchronous kevent(2) call with a change list, which takes effect even while
 * a wait is pending on a worker thread.
 *
 * @example Wait for a descriptor to become readable
 * ```ts
 * import { Events, Interest, KqueuePoller } from "../mod.ts";
 * const poller = new KqueuePoller();
 * // poller.register(fd, 1, Interest.READABLE);
 * const events = new Events();
 * const n = await poller.wait(events, 1000);
 * console.log(n, "ready");
 * poller.close();
 * ```
 */
export class KqueuePoller extends BasePoller {
  /** Always `"kqueue"`. */
  readonly kind = "kqueue" as const;
  readonly #lib: Libc;
  readonly #sym: BsdSymbols;
  readonly #layout: KeventLayout;
  readonly #userFilter: number;
  readonly #kq: number;
  readonly #changes: Uint8Array;
  readonly #changeView: DataView;
  readonly #receipts: Uint8Array;
  readonly #receiptView: DataView;
  readonly #receipt: ReceiptResult = { addErrno: 0, failedAdds: 0 };
  // wake() may run while a wait is pending: it has buffers of its own.
  readonly #wakeChange: Uint8Array;
  readonly #wakeReceipt: Uint8Array;
  readonly #zeroTimeout = new Uint8Array(TIMESPEC_SIZE);
  readonly #asyncTimeout = new Uint8Array(TIMESPEC_SIZE);
  readonly #asyncTimeoutView = new DataView(this.#asyncTimeout.buffer);
  readonly #scratch: KqueueEvent = { fd: 0, token: 0, ready: 0 };
  #slots = new Int32Array(64);
  #syncBuf = new Uint8Array(0);
  #syncView = new DataView(this.#syncBuf.buffer);
  #asyncBuf = new Uint8Array(0);
  #asyncView = new DataView(this.#asyncBuf.buffer);

  /** Creates the kqueue and its EVFILT_USER wake-up event. Needs `--allow-ffi`. */
  constructor() {
    super("kevent");
    this.#lib = libc();
    const sym = this.#lib.bsd;
    if (sym === null) {
      throw new PollerError("UNSUPPORTED", "kqueue is only available on macOS and FreeBSD");
    }
    this.#sym = sym;
    const c = this.#lib.c;
    const layout = keventLayout(c.platform);
    this.#layout = layout;
    this.#userFilter = evfiltUser(c.platform);
    this.#changes = new Uint8Array(MAX_CHANGES * layout.size);
    this.#changeView = new DataView(this.#changes.buffer);
    this.#receipts = new Uint8Array(MAX_CHANGES * layout.size);
    this.#receiptView = new DataView(this.#receipts.buffer);
    this.#wakeChange = new Uint8Array(layout.size);
    this.#wakeReceipt = new Uint8Array(layout.size);

    const kq = sym.kqueue();
    if (kq < 0) fail("kqueue");
    this.#kq = kq;
    // Like every descriptor this package opens: close-on-exec, whatever the system's rules
    // for kqueues across fork().
    const cloexecErr = setCloseOnExec(this.#lib, kq);
    if (cloexecErr !== 0) {
      this.#lib.sym.close(kq);
      throw new SyscallError("fcntl", cloexecErr, "kqueue");
    }

    const wakeView = new DataView(this.#wakeChange.buffer);
    const receiptView = new DataView(this.#wakeReceipt.buffer);
    encodeKevent(wakeView, 0, layout, {
      ident: WAKE_IDENT,
      filter: this.#userFilter,
      // EV_CLEAR: the trigger resets once delivered, so a wake-up needs no draining.
      flags: KQUEUE.EV_ADD | KQUEUE.EV_CLEAR | KQUEUE.EV_RECEIPT,
      fflags: 0,
      data: 0,
      udata: 0,
    });
    const n = sym.kevent(kq, this.#wakeChange, 1, this.#wakeReceipt, 1, this.#zeroTimeout);
    let err = n < 0 ? errno() : 0;
    if (n > 0) {
      const receipt = decodeKevent(receiptView, 0, layout);
      if (receipt.flags & KQUEUE.EV_ERROR) err = receipt.data;
    }
    if (err !== 0) {
      this.#lib.sym.close(kq);
      throw new SyscallError("kevent", err, "EVFILT_USER");
    }
    // From now on the wake change only triggers the event.
    encodeKevent(wakeView, 0, layout, {
      ident: WAKE_IDENT,
      filter: this.#userFilter,
      flags: KQUEUE.EV_RECEIPT,
      fflags: KQUEUE.NOTE_TRIGGER,
      data: 0,
      udata: 0,
    });
  }

  /** Adds the filters of `interest`; see {@link BasePoller.addWatch}. */
  protected override addWatch(fd: number, generation: number, interest: InterestSet): void {
    const err = this.#apply(fd, generation, 0, interest);
    if (err !== 0) {
      // A filter added before the one that failed must not outlive the registration.
      this.#apply(fd, generation, interest & ~this.#receipt.failedAdds, 0);
      throw new SyscallError("kevent", err, `register fd ${fd}`);
    }
  }

  /** Adds and deletes filters; see {@link BasePoller.changeWatch}. */
  protected override changeWatch(
    fd: number,
    generation: number,
    prev: InterestSet,
    next: InterestSet,
  ): void {
    const err = this.#apply(fd, generation, prev, next);
    if (err !== 0) {
      // Record what the kernel really watches, so a later modify computes the right diff.
      this.registry.interest[fd] = next & ~this.#receipt.failedAdds;
      throw new SyscallError("kevent", err, `modify fd ${fd}`);
    }
  }

  /** Deletes the filters of `prev`; see {@link BasePoller.dropWatch}. */
  protected override dropWatch(fd: number, generation: number, prev: InterestSet): void {
    // Errors mean the descriptor was already closed, which removed its knotes.
    this.#apply(fd, generation, prev, 0);
  }

  /** kevent with a zero timeout; see {@link BasePoller.pollReady}. */
  protected override pollReady(events: Events): number {
    const bytes = events.capacity * this.#layout.size;
    if (this.#syncBuf.length < bytes) {
      this.#syncBuf = new Uint8Array(bytes);
      this.#syncView = new DataView(this.#syncBuf.buffer);
    }
    const n = this.#sym.kevent(
      this.#kq,
      null,
      0,
      this.#syncBuf,
      events.capacity,
      this.#zeroTimeout,
    );
    return n < 0 ? n : this.#decode(this.#syncView, n, events);
  }

  /** kevent on a worker thread; see {@link BasePoller.waitBlocking}. */
  protected override waitBlocking(events: Events, timeoutMs: number): Promise<number> {
    const bytes = events.capacity * this.#layout.size;
    if (this.#asyncBuf.length < bytes) {
      this.#asyncBuf = new Uint8Array(bytes);
      this.#asyncView = new DataView(this.#asyncBuf.buffer);
    }
    const ms = clampTimeout(timeoutMs);
    let timeout: Uint8Array | null = null;
    if (ms >= 0) {
      encodeTimespec(this.#asyncTimeoutView, ms);
      timeout = this.#asyncTimeout;
    }
    return this.#sym.keventBlocking(this.#kq, null, 0, this.#asyncBuf, events.capacity, timeout);
  }

  /** Decodes the worker-thread event list; see {@link BasePoller.decodeBlocking}. */
  protected override decodeBlocking(n: number, events: Events): number {
    return this.#decode(this.#asyncView, n, events);
  }

  /** Triggers the EVFILT_USER event; see {@link BasePoller.signalWake}. */
  protected override signalWake(): void {
    // An error here can only mean the kqueue is gone, and then nobody is waiting on it.
    this.#sym.kevent(this.#kq, this.#wakeChange, 1, this.#wakeReceipt, 1, this.#zeroTimeout);
  }

  /** Closes the kqueue, which drops every knote; see {@link BasePoller.releaseKernel}. */
  protected override releaseKernel(): void {
    this.#lib.sym.close(this.#kq);
  }

  /**
   * Applies an interest transition at once: kevent with a change list takes effect even
   * while another thread waits on the same kqueue, so a pending wait needs no wake-up.
   * Returns the errno of the first failed addition (details in `#receipt`), else 0.
   */
  #apply(fd: number, gen: number, prev: InterestSet, next: InterestSet): number {
    const count = encodeInterestChanges(this.#changeView, 0, this.#layout, fd, gen, prev, next);
    const receipt = this.#receipt;
    receipt.addErrno = 0;
    receipt.failedAdds = 0;
    if (count === 0) return 0;
    const added = next & ~prev;
    const n = this.#sym.kevent(
      this.#kq,
      this.#changes,
      count,
      this.#receipts,
      count,
      this.#zeroTimeout,
    );
    if (n < 0) {
      receipt.addErrno = errno();
      // Only additions count: a failed deletion means the knote is gone already.
      receipt.failedAdds = added;
      return added === 0 ? 0 : receipt.addErrno;
    }
    return readReceipts(this.#receiptView, n, this.#layout, added, receipt).addErrno;
  }

  #decode(view: DataView, n: number, events: Events): number {
    const live = this.registry.live.length;
    if (this.#slots.length < live) this.#slots = new Int32Array(live);
    const woken = decodeKevents(
      view,
      n,
      this.#layout,
      this.#userFilter,
      this.registry,
      events,
      this.#slots,
      this.#scratch,
    );
    if (woken) this.noteWake();
    return events.length;
  }
}

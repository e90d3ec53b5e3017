/**
 * The corked write path: every frame sent during one loop tick is written into a shared
 * arena (or, when large, kept as one immutable buffer shared by every recipient), each
 * connection remembers which bytes are its own, and at the end of the tick each
 * connection is flushed with one send(2).
 *
 * A broadcast therefore costs one encode and, per recipient, a couple of field updates
 * and one system call for everything it got in that tick. Bytes the kernel did not take
 * are copied into the connection's own queue (only then), and write interest is asked for
 * only while such bytes exist.
 *
 * @module
 */

import {
  addressOf,
  IO_FAILED,
  lastIoError,
  sendFrom,
  sendFromAddress,
  WOULD_BLOCK,
} from "../net/io.ts";

/** The per-connection fields the outbox keeps (they live on the connection object itself). */
export interface OutboxConnection {
  /** Socket descriptor. */
  readonly fd: number;
  /** Start of this tick's bytes in the arena (equal to `_re` when none). */
  _rs: number;
  /** End of this tick's bytes in the arena. */
  _re: number;
  /** Owned or shared chunks waiting to be written, oldest first; null when empty. */
  _q: Uint8Array[] | null;
  /** How much of `_q[0]` was already written. */
  _qHead: number;
  /** Unwritten bytes held in `_q`. */
  _qBytes: number;
  /** In this tick's flush list. */
  _dirty: boolean;
  /** The kernel buffer was full: waiting for writability before writing again. */
  _blocked: boolean;
  /** The queue starts in the middle of a frame: a write took only part of it. */
  _partial: boolean;
}

/** What the outbox tells its owner; called after a flush, never in the middle of one. */
export interface OutboxEvents<C extends OutboxConnection> {
  /** The connection's kernel buffer is full: ask for write interest. */
  blocked(conn: C): void;
  /** A blocked connection wrote everything: drop write interest. */
  drained(conn: C): void;
  /** A write failed (peer reset, broken pipe); `errno` tells why. */
  failed(conn: C, errno: number): void;
  /** Bytes the kernel accepted, for statistics. */
  wrote(bytes: number): void;
}

/** Frames larger than this skip the arena and are queued as their own buffer. */
export const ARENA_FRAME_LIMIT = 64 * 1024;
const ARENA_SIZE = 1024 * 1024;
/** Pool size classes are multiples of this. */
const POOL_GRAIN = 4 * 1024;
/** Frames above this are not pooled. */
const POOL_MAX_FRAME = 4 * 1024 * 1024;
/** Bytes of free buffers the pool keeps at most. */
const POOL_MAX_FREE = 8 * 1024 * 1024;

/**
 * Buffers for frames too large for the arena, reused once every connection that queued
 * one has written it or dropped it. Without it every large broadcast allocates a buffer
 * that lives until the next garbage collection, and a steady stream of them keeps tens of
 * megabytes of garbage (V8 collects external memory lazily) and fragments the heap.
 *
 * A pooled buffer carries a reference count: 1 for its creator from {@link FramePool.acquire}
 * until {@link FramePool.release}, plus 1 per connection queue holding it (taken and given
 * back by the {@link Outbox}). Buffers not from the pool pass through untouched. Counts live
 * in a `WeakMap`, so a buffer lost with an abandoned connection is simply collected.
 */
export class FramePool {
  readonly #refs = new WeakMap<ArrayBuffer, number>();
  readonly #free = new Map<number, ArrayBuffer[]>();
  #freeBytes = 0;

  /** A buffer of `length` bytes (contents undefined) with one reference, the caller's. */
  acquire(length: number): Uint8Array {
    if (length > POOL_MAX_FRAME) return new Uint8Array(length);
    const size = Math.ceil(length / POOL_GRAIN) * POOL_GRAIN;
    const buf = this.#free.get(size)?.pop();
    if (buf !== undefined) {
      this.#freeBytes -= size;
      this.#refs.set(buf, 1);
      return new Uint8Array(buf, 0, length);
    }
    const fresh = new ArrayBuffer(size);
    this.#refs.set(fresh, 1);
    return new Uint8Array(fresh, 0, length);
  }

  /** Takes one more reference to `chunk` when it is pooled. */
  retain(chunk: Uint8Array): void {
    const buf = chunk.buffer as ArrayBuffer;
    const n = this.#refs.get(buf);
    if (n !== undefined) this.#refs.set(buf, n + 1);
  }

  /** Gives back one reference to `chunk`; the last one returns it to the pool. */
  release(chunk: Uint8Array): void {
    const buf = chunk.buffer as ArrayBuffer;
    const n = this.#refs.get(buf);
    if (n === undefined) return;
    if (n > 1) {
      this.#refs.set(buf, n - 1);
      return;
    }
    this.#refs.delete(buf);
    const size = buf.byteLength;
    if (this.#freeBytes + size > POOL_MAX_FREE) return;
    let list = this.#free.get(size);
    if (list === undefined) {
      list = [];
      this.#free.set(size, list);
    }
    list.push(buf);
    this.#freeBytes += size;
  }
}

/** The pool of every outbox (connections may move between managers with their queues). */
export const framePool: FramePool = new FramePool();

/**
 * One per manager. Not reentrant: the owner must not call back into it from the event
 * callbacks (they only change poller interest or schedule work).
 */
export class Outbox<C extends OutboxConnection> {
  /** Current arena; frames are encoded straight into it. */
  arena: Uint8Array;
  /** Bytes of the arena used in this tick. */
  used = 0;
  #address: number;
  readonly #dirty: C[] = [];
  readonly #events: OutboxEvents<C>;
  readonly #blockedNow: C[] = [];
  readonly #drainedNow: C[] = [];
  readonly #failedNow: C[] = [];
  readonly #failedErrno: number[] = [];
  /** Unblocked connections whose queue the end-of-tick flush writes; reported drained after. */
  readonly #watchDrain: C[] = [];

  /** @param events Callbacks of the owner. */
  constructor(events: OutboxEvents<C>) {
    this.#events = events;
    this.arena = new Uint8Array(new ArrayBuffer(ARENA_SIZE));
    this.#address = addressOf(this.arena);
  }

  /** Connections waiting for the end-of-tick flush. */
  get pending(): number {
    return this.#dirty.length;
  }

  /**
   * Reserves `length` bytes of the arena and returns their offset; the caller writes the
   * frame there. Flushes early when the arena is full. Returns -1 for frames above
   * {@link ARENA_FRAME_LIMIT}, which the caller queues with {@link Outbox.pushChunk}.
   */
  alloc(length: number): number {
    if (length > ARENA_FRAME_LIMIT) return -1;
    if (this.used + length > this.arena.length) {
      this.flush();
      // flush() ran the owner's callbacks, which may have refilled the arena.
      if (this.used + length > this.arena.length) return -1;
    }
    const at = this.used;
    this.used += length;
    return at;
  }

  /** Gives `conn` the arena bytes [start, end) (a frame written after {@link Outbox.alloc}). */
  pushRange(conn: C, start: number, end: number): void {
    if (conn._q !== null) {
      // Already queueing (blocked, or holding an earlier chunk): keep order by copying.
      this.#append(conn, this.arena.slice(start, end));
      return;
    }
    if (conn._dirty) {
      if (conn._re === start) {
        conn._re = end;
        return;
      }
      this.#materialize(conn);
      this.#append(conn, this.arena.slice(start, end));
      return;
    }
    conn._rs = start;
    conn._re = end;
    conn._dirty = true;
    this.#dirty.push(conn);
  }

  /**
   * Queues an immutable buffer for `conn`; the same buffer may be given to many
   * connections. A buffer from {@link framePool} is retained until written or discarded.
   */
  pushChunk(conn: C, chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (conn._rs !== conn._re) this.#materialize(conn);
    framePool.retain(chunk);
    this.#append(conn, chunk);
    if (!conn._dirty) {
      conn._dirty = true;
      this.#dirty.push(conn);
    }
  }

  /** Bytes queued for `conn` and not yet accepted by the kernel. */
  buffered(conn: C): number {
    return conn._qBytes + (conn._re - conn._rs);
  }

  /** Forgets everything queued for `conn` (it is being torn down). */
  discard(conn: C): void {
    const q = conn._q;
    if (q !== null) { for (const chunk of q) framePool.release(chunk); }
    conn._q = null;
    conn._qHead = 0;
    conn._qBytes = 0;
    conn._partial = false;
    conn._rs = conn._re = 0;
    // It may still sit in the dirty list; flush skips it because it has nothing to send.
  }

  /** Writes every connection that got data this tick, then resets the arena. */
  flush(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const conn = dirty[i];
      conn._dirty = false;
      if (conn._blocked) {
        // Wait for writability; the arena is about to be reused, so keep a copy.
        if (conn._rs !== conn._re) this.#materialize(conn);
        continue;
      }
      this.#write(conn);
    }
    dirty.length = 0;
    this.used = 0;
    if (this.#watchDrain.length > 0) {
      for (const c of this.#watchDrain) if (!c._blocked && c._q === null) this.#drainedNow.push(c);
      this.#watchDrain.length = 0;
    }
    this.#report();
  }

  /** Writes what `conn` has queued; called when it became writable. */
  flushConnection(conn: C): void {
    if (conn._dirty) {
      // Its arena bytes belong after its queue: the end-of-tick flush writes them in order.
      conn._blocked = false;
      this.#watchDrain.push(conn);
      return;
    }
    conn._blocked = false;
    this.#write(conn);
    if (!conn._blocked && conn._q === null) this.#drainedNow.push(conn);
    this.#report();
  }

  #append(conn: C, chunk: Uint8Array): void {
    if (conn._q === null) conn._q = [chunk];
    else conn._q.push(chunk);
    conn._qBytes += chunk.length;
  }

  #materialize(conn: C): void {
    const start = conn._rs;
    const end = conn._re;
    conn._rs = conn._re = 0;
    if (start !== end) this.#append(conn, this.arena.slice(start, end));
  }

  #write(conn: C): void {
    const fd = conn.fd;
    let written = 0;
    const q = conn._q;
    if (q !== null) {
      while (q.length > 0) {
        const chunk = q[0];
        const head = conn._qHead;
        const len = chunk.length - head;
        const n = sendFrom(fd, head === 0 ? chunk : chunk.subarray(head), len);
        if (n === WOULD_BLOCK || (n >= 0 && n < len)) {
          if (n > 0) {
            conn._partial = true;
            conn._qHead += n;
            conn._qBytes -= n;
            written += n;
          }
          if (conn._rs !== conn._re) this.#materialize(conn);
          this.#block(conn);
          this.#events.wrote(written);
          return;
        }
        if (n === IO_FAILED) {
          this.#fail(conn);
          this.#events.wrote(written);
          return;
        }
        q.shift();
        framePool.release(chunk);
        conn._qHead = 0;
        conn._qBytes -= len;
        written += len;
      }
      conn._q = null;
      conn._partial = false;
    }
    const start = conn._rs;
    const end = conn._re;
    if (start !== end) {
      conn._rs = conn._re = 0;
      const len = end - start;
      const n = sendFromAddress(fd, this.#address + start, len);
      if (n === len) {
        written += len;
      } else if (n === IO_FAILED) {
        this.#fail(conn);
      } else {
        const took = n > 0 ? n : 0;
        written += took;
        if (took > 0) conn._partial = true;
        this.#append(conn, this.arena.slice(start + took, end));
        this.#block(conn);
      }
    }
    this.#events.wrote(written);
  }

  #block(conn: C): void {
    if (!conn._blocked) {
      conn._blocked = true;
      this.#blockedNow.push(conn);
    }
  }

  #fail(conn: C): void {
    const e = lastIoError();
    this.discard(conn);
    this.#failedNow.push(conn);
    this.#failedErrno.push(e);
  }

  #report(): void {
    const ev = this.#events;
    if (this.#blockedNow.length > 0) {
      for (const c of this.#blockedNow) if (c._blocked) ev.blocked(c);
      this.#blockedNow.length = 0;
    }
    if (this.#drainedNow.length > 0) {
      const list = this.#drainedNow.splice(0);
      for (const c of list) ev.drained(c);
    }
    if (this.#failedNow.length > 0) {
      const list = this.#failedNow.splice(0);
      const errs = this.#failedErrno.splice(0);
      for (let i = 0; i < list.length; i++) ev.failed(list[i], errs[i]);
    }
  }
}

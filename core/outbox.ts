/**
 * The corked write path: every frame sent during one loop tick is encoded straight into a
 * shared arena (or, when large, into one immutable pooled buffer shared by every
 * recipient), each connection remembers which bytes are its own, and at the end of the
 * tick each connection is flushed with one write through its transport.
 *
 * A broadcast therefore costs one encode and, per recipient, a couple of field updates
 * and one system call (one TLS write) for everything it got in that tick. Bytes the
 * transport did not take are copied into the connection's own queue (only then), and
 * write interest is asked for only while such bytes exist. A connection that keeps
 * waiting gathers those copies in a few pooled buffers sized to its backlog, not a buffer
 * per tick: a stalled reader of a 1 KiB broadcast at 100 messages/s held its 16 MiB
 * backlog in 16,000 small buffers, 4 times the bytes in resident memory.
 *
 * @module
 */

import { addressOf } from "../net/io.ts";
import { frameHeaderLength, writeFrameHeader } from "../protocol/frame/encoder.ts";
import { IO_FAILED, type Transport, WOULD_BLOCK } from "../transport/transport.ts";
import { framePool } from "./frame_pool.ts";

/** What the outbox keeps per connection (fields of the connection object itself). */
export interface OutboxConnection {
  /** Socket descriptor. */
  readonly fd: number;
  /** How bytes reach the descriptor. */
  readonly transport: Transport;
  /** Start of this tick's bytes in the arena (equal to `re` when none). */
  rs: number;
  /** End of this tick's bytes in the arena. */
  re: number;
  /** Owned or shared chunks waiting to be written, oldest first; null when empty. */
  q: Uint8Array[] | null;
  /** How much of `q[0]` was already written. */
  qHead: number;
  /** Unwritten bytes held in `q`. */
  qBytes: number;
  /**
   * The pooled buffer the last chunk of `q` is a view of, while more copied bytes may be
   * appended to it (see {@link Outbox}); null otherwise.
   */
  qTail: Uint8Array | null;
  /** In this tick's flush list. */
  dirty: boolean;
  /** The kernel buffer was full: waiting for writability before writing again. */
  blocked: boolean;
  /** The queue starts in the middle of a frame: a write took only part of it. */
  partial: boolean;
  /**
   * When > 0: the last this many bytes queued are a close frame that must not wait behind
   * data the peer does not take (see {@link Outbox.expedite}).
   */
  readonly closeTail?: number;
}

/**
 * Bytes queued for `conn` that its transport has not taken yet: what `bufferedAmount`
 * reports and what the backpressure limit is checked against.
 *
 * @example
 * ```ts
 * import { bufferedBytes } from "./outbox.ts";
 * console.log(bufferedBytes({ rs: 10, re: 25, qBytes: 100 })); // 115
 * ```
 */
export function bufferedBytes(conn: Pick<OutboxConnection, "rs" | "re" | "qBytes">): number {
  return conn.qBytes + (conn.re - conn.rs);
}

/** What the outbox tells its owner; called after a flush, never in the middle of one. */
export interface OutboxEvents<C extends OutboxConnection> {
  /** The connection's kernel buffer is full: ask for write interest. */
  blocked(conn: C): void;
  /** A blocked connection wrote everything: drop write interest. */
  drained(conn: C): void;
  /** A write failed (peer reset, broken pipe); `errno` tells why. */
  failed(conn: C, errno: number): void;
  /** Bytes the transports accepted, for statistics. */
  wrote(bytes: number): void;
}

/** Frames larger than this skip the arena and are queued as their own buffer. */
export const ARENA_FRAME_LIMIT = 64 * 1024;
/**
 * Messages with a larger payload are sent as fragments of this many payload bytes: a close
 * frame then waits behind one fragment at most (control frames may go between fragments,
 * RFC 6455 §5.4), and a large message is copied into pooled buffers of one size class
 * instead of a fresh buffer as large as the message.
 */
export const FRAGMENT_PAYLOAD = 256 * 1024 - 16;
const ARENA_SIZE = 1024 * 1024;
/** Smallest and largest buffer that copies for a waiting connection are gathered in. */
const TAIL_MIN = 4 * 1024;
const TAIL_MAX = 256 * 1024;
const utf8 = new TextEncoder();

/**
 * One per manager. Not reentrant: the owner must not call back into it from the event
 * callbacks (they only change poller interest or schedule work).
 *
 * @example Encode once, queue for two connections, write at the end of the tick
 * ```ts
 * import { Outbox, type OutboxConnection } from "./outbox.ts";
 *
 * declare const a: OutboxConnection;
 * declare const b: OutboxConnection;
 * const outbox = new Outbox<OutboxConnection>({
 *   blocked() {},
 *   drained() {},
 *   failed() {},
 *   wrote() {},
 * });
 * const length = outbox.encode(0x1, "hello");
 * outbox.pushEncoded(a);
 * outbox.pushEncoded(b);
 * outbox.releaseEncoded();
 * outbox.flush(); // one write per connection
 * ```
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
  /**
   * The current frames, by slot (a broadcast needs a plain and a compressed one, and may
   * send to a connection of its own meanwhile): the arena range of each, or when too large
   * for the arena its pooled buffer (our reference).
   */
  readonly #frameStart = [0, 0, 0];
  readonly #frameEnd = [0, 0, 0];
  /** The pooled frames of a slot's message when it is too large for the arena. */
  readonly #bigFrames: Uint8Array[][] = [[], [], []];

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

  /**
   * Encodes an unmasked data frame once (FIN set; `rsv1` marks a compressed message) and
   * makes it the current frame of `slot` (0 to 2) for {@link Outbox.pushEncoded}. Small
   * frames go into the arena, large ones into a pooled buffer, messages above
   * {@link FRAGMENT_PAYLOAD} into fragments; call {@link Outbox.releaseEncoded} when every
   * recipient has it.
   *
   * @returns the length in bytes of its frame (or fragments).
   */
  encode(opcode: number, data: string | Uint8Array, rsv1 = false, slot = 0): number {
    this.#release(slot);
    if (typeof data !== "string") {
      const len = data.length;
      const h = frameHeaderLength(len, false);
      const at = this.alloc(h + len);
      if (at < 0) return this.#encodeLarge(opcode, data, rsv1, slot);
      const arena = this.arena;
      writeFrameHeader(arena, at, opcode, true, len, null, rsv1);
      arena.set(data, at + h);
      this.#frameStart[slot] = at;
      this.#frameEnd[slot] = at + h + len;
      return h + len;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: encode straight into the arena after
    // room for the largest header the bound allows, then close any gap.
    const bound = data.length * 3;
    const maxH = frameHeaderLength(bound, false);
    const at = this.alloc(maxH + bound);
    if (at < 0) return this.#encodeLarge(opcode, utf8.encode(data), rsv1, slot);
    const arena = this.arena;
    const written = data.length === 0
      ? 0
      : utf8.encodeInto(data, arena.subarray(at + maxH, at + maxH + bound)).written;
    const h = frameHeaderLength(written, false);
    // Frames must stay back to back in the arena so that one connection's frames of a tick
    // form one range (one write); moving a short payload a few bytes costs less than a gap.
    if (h !== maxH) arena.copyWithin(at + h, at + maxH, at + maxH + written);
    writeFrameHeader(arena, at, opcode, true, written, null, rsv1);
    const end = at + h + written;
    // Give the unused reservation back when this was the last allocation.
    if (this.used === at + maxH + bound) this.used = end;
    this.#frameStart[slot] = at;
    this.#frameEnd[slot] = end;
    return h + written;
  }

  /**
   * A message too large for the arena, in pooled buffers: one frame, or fragments of
   * {@link FRAGMENT_PAYLOAD} bytes (the first carries the opcode and `rsv1`, the others
   * are continuations, the last has FIN).
   */
  #encodeLarge(opcode: number, data: Uint8Array, rsv1: boolean, slot: number): number {
    const frames = this.#bigFrames[slot];
    const len = data.length;
    let total = 0;
    for (let at = 0; at === 0 || at < len; at += FRAGMENT_PAYLOAD) {
      const n = Math.min(FRAGMENT_PAYLOAD, len - at);
      const h = frameHeaderLength(n, false);
      const frame = framePool.acquire(h + n);
      const first = at === 0;
      writeFrameHeader(frame, 0, first ? opcode : 0, at + n === len, n, null, first && rsv1);
      frame.set(n === len ? data : data.subarray(at, at + n), h);
      frames.push(frame);
      total += h + n;
    }
    return total;
  }

  /** Queues the current frame of `slot` (see {@link Outbox.encode}) for `conn`. */
  pushEncoded(conn: C, slot = 0): void {
    const big = this.#bigFrames[slot];
    if (big.length === 0) this.pushRange(conn, this.#frameStart[slot], this.#frameEnd[slot]);
    else for (let i = 0; i < big.length; i++) this.pushChunk(conn, big[i]);
  }

  /**
   * Ends the current frame of `slot`: a pooled one goes back to the pool once every queue
   * wrote it.
   */
  releaseEncoded(slot = 0): void {
    this.#release(slot);
  }

  #release(slot: number): void {
    const big = this.#bigFrames[slot];
    if (big.length === 0) return;
    for (let i = 0; i < big.length; i++) framePool.release(big[i]);
    big.length = 0;
  }

  /**
   * Queues a copy of small ready-made bytes (control frames, the handshake answer): in the
   * arena when they fit, so the caller may reuse its buffer at once.
   */
  pushFrame(conn: C, frame: Uint8Array): void {
    const at = this.alloc(frame.length);
    if (at < 0) {
      this.pushChunk(conn, frame.slice());
      return;
    }
    this.arena.set(frame, at);
    this.pushRange(conn, at, at + frame.length);
  }

  /** Gives `conn` the arena bytes [start, end) (a frame written after {@link Outbox.alloc}). */
  pushRange(conn: C, start: number, end: number): void {
    if (conn.q !== null) {
      // Already queueing (blocked, or holding an earlier chunk): keep order by copying.
      this.#appendCopy(conn, start, end);
      return;
    }
    if (conn.dirty) {
      if (conn.re === start) {
        conn.re = end;
        return;
      }
      this.#materialize(conn);
      this.#appendCopy(conn, start, end);
      return;
    }
    conn.rs = start;
    conn.re = end;
    conn.dirty = true;
    this.#dirty.push(conn);
  }

  /**
   * Queues an immutable buffer for `conn`; the same buffer may be given to many
   * connections. A buffer from the frame pool is retained until written or discarded.
   */
  pushChunk(conn: C, chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (conn.rs !== conn.re) this.#materialize(conn);
    framePool.retain(chunk);
    this.#append(conn, chunk);
    conn.qTail = null;
    if (!conn.dirty) {
      conn.dirty = true;
      this.#dirty.push(conn);
    }
  }

  /**
   * Lets the close frame at the end of `conn`'s queue (its last `tail` bytes) go right after
   * the frame being written, dropping the data queued between them: RFC 6455 §5.5.1 lets an
   * endpoint finish the frame in progress before its close, and after the close no data
   * frame may follow anyway. Only what the transport has not taken is dropped, so it is
   * called when a write blocks (the peer is not reading), not while bytes still flow. With
   * TLS the first chunk is always kept: a write that would block must be retried with the
   * same bytes.
   *
   * @returns the bytes dropped.
   */
  expedite(conn: C, tail: number): number {
    if (conn.rs !== conn.re) this.#materialize(conn);
    const q = conn.q;
    if (q === null) return 0;
    const keepFirst = conn.partial || conn.transport.kind !== "tcp";
    const first = keepFirst ? q[0].length - conn.qHead : 0;
    const total = conn.qBytes;
    if (first + tail >= total) return 0;
    // The close frame, copied out of the end of the queue (it may span two chunks when a
    // write cut the arena range it was in).
    const close = new Uint8Array(tail);
    let need = tail;
    for (let i = q.length - 1; need > 0; i--) {
      const chunk = q[i];
      const from = Math.max(i === 0 ? conn.qHead : 0, chunk.length - need);
      const part = chunk.length - from;
      close.set(chunk.subarray(from), need - part);
      need -= part;
    }
    for (let i = keepFirst ? 1 : 0; i < q.length; i++) framePool.release(q[i]);
    conn.qTail = null;
    if (keepFirst) {
      q.length = 1;
      q.push(close);
    } else {
      conn.q = [close];
      conn.qHead = 0;
    }
    conn.qBytes = first + tail;
    return total - first - tail;
  }

  /** Forgets everything queued for `conn` (it is being torn down). */
  discard(conn: C): void {
    const q = conn.q;
    if (q !== null) { for (const chunk of q) framePool.release(chunk); }
    conn.q = null;
    conn.qTail = null;
    conn.qHead = 0;
    conn.qBytes = 0;
    conn.partial = false;
    conn.rs = conn.re = 0;
    // It may still sit in the dirty list; flush skips it because it has nothing to send.
  }

  /**
   * Keeps `conn`'s arena bytes of this tick in its own queue, e.g. before it leaves for
   * another manager whose arena is a different buffer.
   */
  detach(conn: C): void {
    if (conn.rs !== conn.re) this.#materialize(conn);
  }

  /** Writes every connection that got data this tick, then resets the arena. */
  flush(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const conn = dirty[i];
      conn.dirty = false;
      if (conn.blocked) {
        // Wait for writability; the arena is about to be reused, so keep a copy.
        if (conn.rs !== conn.re) this.#materialize(conn);
        continue;
      }
      this.#write(conn);
    }
    dirty.length = 0;
    this.used = 0;
    if (this.#watchDrain.length > 0) {
      for (const c of this.#watchDrain) if (!c.blocked && c.q === null) this.#drainedNow.push(c);
      this.#watchDrain.length = 0;
    }
    this.#report();
  }

  /** Writes what `conn` has queued; called when it became writable. */
  flushConnection(conn: C): void {
    if (conn.dirty) {
      // Its arena bytes belong after its queue: the end-of-tick flush writes them in order.
      conn.blocked = false;
      this.#watchDrain.push(conn);
      return;
    }
    conn.blocked = false;
    this.#write(conn);
    if (!conn.blocked && conn.q === null) this.#drainedNow.push(conn);
    this.#report();
  }

  #append(conn: C, chunk: Uint8Array): void {
    if (conn.q === null) conn.q = [chunk];
    else conn.q.push(chunk);
    conn.qBytes += chunk.length;
  }

  #materialize(conn: C): void {
    const start = conn.rs;
    const end = conn.re;
    conn.rs = conn.re = 0;
    if (start !== end) this.#appendCopy(conn, start, end);
  }

  /**
   * Queues a copy of the arena bytes [start, end) for `conn`. The first copy of a queue is
   * a buffer of its own size (most waits are short); later ones go into the queue's open
   * tail, a pooled buffer of 4 to 256 KiB sized to the backlog, while they fit. With TLS
   * the first chunk never grows: a write that would block is retried with the same bytes.
   */
  #appendCopy(conn: C, start: number, end: number): void {
    const len = end - start;
    const q = conn.q;
    if (q === null) {
      this.#append(conn, this.arena.slice(start, end));
      return;
    }
    const bytes = this.arena.subarray(start, end);
    const tail = conn.qTail;
    const last = q.length - 1;
    if (tail !== null && (last > 0 || conn.transport.kind === "tcp")) {
      const fill = q[last].length;
      if (fill + len <= tail.length) {
        tail.set(bytes, fill);
        q[last] = tail.subarray(0, fill + len);
        conn.qBytes += len;
        return;
      }
    }
    let size = TAIL_MIN;
    while (size < TAIL_MAX && size < conn.qBytes + len) size *= 2;
    if (len > size) {
      conn.qTail = null;
      this.#append(conn, bytes.slice());
      return;
    }
    const fresh = framePool.acquire(size);
    fresh.set(bytes, 0);
    conn.qTail = fresh;
    this.#append(conn, fresh.subarray(0, len));
  }

  #write(conn: C): void {
    const fd = conn.fd;
    const transport = conn.transport;
    let written = 0;
    const q = conn.q;
    if (q !== null) {
      while (q.length > 0) {
        const chunk = q[0];
        const head = conn.qHead;
        const len = chunk.length - head;
        // A write that would block is retried later from this same chunk and offset, so
        // the transport sees the same bytes again (TLS requires it).
        const n = transport.write(fd, head === 0 ? chunk : chunk.subarray(head), len);
        if (n === WOULD_BLOCK || (n >= 0 && n < len)) {
          if (n > 0) {
            conn.partial = true;
            conn.qHead += n;
            conn.qBytes -= n;
            written += n;
          }
          if (conn.rs !== conn.re) this.#materialize(conn);
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
        conn.qHead = 0;
        conn.qBytes -= len;
        written += len;
      }
      conn.q = null;
      conn.qTail = null;
      conn.partial = false;
    }
    const start = conn.rs;
    const end = conn.re;
    if (start !== end) {
      conn.rs = conn.re = 0;
      const len = end - start;
      const n = transport.writeAddress(fd, this.#address + start, len);
      if (n === len) {
        written += len;
      } else if (n === IO_FAILED) {
        this.#fail(conn);
      } else {
        const took = n > 0 ? n : 0;
        written += took;
        if (took > 0) conn.partial = true;
        this.#append(conn, this.arena.slice(start + took, end));
        this.#block(conn);
      }
    }
    this.#events.wrote(written);
  }

  #block(conn: C): void {
    const tail = conn.closeTail;
    if (tail !== undefined && tail > 0) this.expedite(conn, tail);
    if (!conn.blocked) {
      conn.blocked = true;
      this.#blockedNow.push(conn);
    }
  }

  #fail(conn: C): void {
    const e = conn.transport.lastError;
    this.discard(conn);
    this.#failedNow.push(conn);
    this.#failedErrno.push(e);
  }

  #report(): void {
    const ev = this.#events;
    if (this.#blockedNow.length > 0) {
      for (const c of this.#blockedNow) if (c.blocked) ev.blocked(c);
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

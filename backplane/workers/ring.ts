/**
 * A ring of records in shared memory, one per publishing worker: a single producer (the
 * worker that publishes) and a read cursor per consumer (every other worker). Each record
 * is written once and read in place by every consumer; the producer reuses a region only
 * once every consumer that takes part has read past it.
 *
 * Layout of the SharedArrayBuffer: 64-byte lines of control words (so that the producer's
 * and each consumer's cursor do not share a cache line), then the data:
 *
 * | line    | words                                                         |
 * | ------- | ------------------------------------------------------------- |
 * | 0       | write position (bytes, wrapping 32-bit), records committed     |
 * | 1       | "wants space": the producer waits for a consumer to read       |
 * | 2 + c   | consumer c: read position, state                              |
 *
 * A consumer's state is `IDLE` (taking part, not reading right now), `DRAINING` (reading:
 * its records must stay as they are), `EVICTED` (it fell behind a full ring for too long;
 * the producer no longer waits for it, and it skips ahead before its next read) or
 * `ABSENT` (not taking part: not started, stopped, or crashed). Only the consumer moves
 * itself between IDLE and DRAINING; the producer only moves an IDLE consumer to EVICTED,
 * with a compare-and-swap, so a consumer's records are never overwritten while it reads.
 *
 * Positions are byte counters modulo 2^32; the data index is `position & (capacity - 1)`.
 * Every record is at least {@link RECORD_HEADER} bytes and 8-aligned; a record never
 * wraps: the space left at the end is filled with a pad record (or, under 32 bytes,
 * skipped by both sides).
 *
 * @module
 */

import { KIND_PAD, RECORD_HEADER, writePad } from "./records.ts";

/** A consumer taking part, not reading right now. */
export const IDLE = 0;
/** A consumer reading its records. */
export const DRAINING = 1;
/** A consumer the producer skipped ahead of (see the module). */
export const EVICTED = 2;
/** A node not taking part as a consumer. */
export const ABSENT = 3;

const LINE = 16; // int32 words per 64-byte line
const WRITE = 0;
const RECORDS = 1;
const WANT_SPACE = LINE;
const readAt = (c: number): number => (2 + c) * LINE;
const stateAt = (c: number): number => (2 + c) * LINE + 1;

/** Bytes of the control area of a ring of `nodes` nodes. */
function controlBytes(nodes: number): number {
  return (2 + nodes) * LINE * 4;
}

/**
 * Bytes of the SharedArrayBuffer of a ring.
 *
 * @example
 * ```ts
 * import { ringBufferBytes } from "./ring.ts";
 * console.log(ringBufferBytes(3, 4096)); // 4416: 5 control lines of 64 bytes, then the data
 * ```
 */
export function ringBufferBytes(nodes: number, capacity: number): number {
  return controlBytes(nodes) + capacity;
}

/**
 * Creates a ring's shared memory, every consumer `ABSENT`.
 *
 * @param nodes Number of nodes (producer included).
 * @param capacity Data bytes, a power of two >= 1024.
 *
 * @example
 * ```ts
 * import { createRing } from "./ring.ts";
 * console.log(createRing(3, 4096).byteLength); // 4416
 * ```
 */
export function createRing(nodes: number, capacity: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(ringBufferBytes(nodes, capacity));
  const ctl = new Int32Array(sab, 0, controlBytes(nodes) / 4);
  for (let c = 0; c < nodes; c++) ctl[stateAt(c)] = ABSENT;
  return sab;
}

/**
 * Marks consumer `node` absent on a ring whatever its state: the supervisor does it for a
 * worker that died, possibly in the middle of a read.
 */
export function forceAbsent(sab: SharedArrayBuffer, nodes: number, node: number): void {
  const ctl = new Int32Array(sab, 0, controlBytes(nodes) / 4);
  Atomics.store(ctl, stateAt(node), ABSENT);
}

/** Views of one ring. */
class RingViews {
  readonly ctl: Int32Array;
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly capacity: number;
  readonly mask: number;
  readonly nodes: number;

  constructor(sab: SharedArrayBuffer, nodes: number) {
    const control = controlBytes(nodes);
    const capacity = sab.byteLength - control;
    this.ctl = new Int32Array(sab, 0, control / 4);
    this.u8 = new Uint8Array(sab, control, capacity);
    this.i32 = new Int32Array(sab, control, capacity / 4);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.nodes = nodes;
  }
}

/**
 * The producer's end of a ring.
 *
 * @example Write a record, then read it with a consumer
 * ```ts
 * import { createRing, RingReader, RingWriter } from "./ring.ts";
 * import { readSeq, recordSize, writeRecord } from "./records.ts";
 *
 * const sab = createRing(2, 4096);
 * const reader = new RingReader(sab, 2, 1);
 * reader.attach();
 * const writer = new RingWriter(sab, 2, 0);
 * const size = recordSize(4, 3);
 * const at = writer.reserve(size);
 * writeRecord(writer.u8, writer.i32, at, 1, 1, 1, false, new TextEncoder().encode("room"), new Uint8Array(3));
 * writer.commit(size);
 * reader.drain((_u8, i32, at) => console.log(readSeq(i32, at)), 1 << 20); // 1
 * ```
 */
export class RingWriter {
  /** The data as bytes. */
  readonly u8: Uint8Array;
  /** The data as words. */
  readonly i32: Int32Array;
  readonly #v: RingViews;
  readonly #self: number;
  #pos: number;
  /** Bytes known to be free (a lower bound: consumers only move forward). */
  #free = 0;

  /**
   * @param sab The ring ({@link createRing}).
   * @param nodes Number of nodes.
   * @param self The producer's node index (never a consumer of its own ring).
   */
  constructor(sab: SharedArrayBuffer, nodes: number, self: number) {
    this.#v = new RingViews(sab, nodes);
    this.u8 = this.#v.u8;
    this.i32 = this.#v.i32;
    this.#self = self;
    // A worker restarted after a crash goes on from where its predecessor stopped.
    this.#pos = Atomics.load(this.#v.ctl, WRITE);
  }

  /** Data bytes. */
  get capacity(): number {
    return this.#v.capacity;
  }

  /** Records committed since the ring was created. */
  get records(): number {
    return Atomics.load(this.#v.ctl, RECORDS) >>> 0;
  }

  /**
   * Room for a record of `size` bytes (a multiple of 8, at most half the capacity):
   * returns its byte offset in {@link RingWriter.u8} / {@link RingWriter.i32}, or -1 when
   * the consumers have not read far enough. Call {@link RingWriter.commit} once written.
   */
  reserve(size: number): number {
    const v = this.#v;
    let idx = this.#pos & v.mask;
    const tail = v.capacity - idx;
    const need = size <= tail ? size : tail + size;
    if (need > this.#free) {
      this.#free = this.#measureFree();
      if (need > this.#free) return -1;
    }
    if (size > tail) {
      // The record does not fit before the end: pad to it and start over at 0.
      if (tail >= RECORD_HEADER) writePad(v.i32, idx, tail);
      this.#pos = (this.#pos + tail) | 0;
      this.#free -= tail;
      idx = 0;
    }
    return idx;
  }

  /** Makes the record reserved last visible to the consumers. */
  commit(size: number): void {
    this.#pos = (this.#pos + size) | 0;
    this.#free -= size;
    const ctl = this.#v.ctl;
    Atomics.store(ctl, WRITE, this.#pos);
    Atomics.add(ctl, RECORDS, 1);
  }

  /** Asks consumers to ring the producer's doorbell once they have read (or not). */
  wantSpace(on: boolean): void {
    Atomics.store(this.#v.ctl, WANT_SPACE, on ? 1 : 0);
  }

  /**
   * Skips ahead of the idle consumers that keep `size` bytes from being reserved, slowest
   * first, until it fits. Returns how many were evicted (0 when the one in the way is
   * reading right now: it is alive, and moving).
   */
  evictFor(size: number): number {
    const v = this.#v;
    const ctl = v.ctl;
    const tail = v.capacity - (this.#pos & v.mask);
    const need = size <= tail ? size : tail + size;
    let evicted = 0;
    for (;;) {
      let worst = -1;
      let worstLag = v.capacity - need;
      for (let c = 0; c < v.nodes; c++) {
        if (c === this.#self) continue;
        const state = Atomics.load(ctl, stateAt(c));
        if (state === EVICTED || state === ABSENT) continue;
        const lag = (this.#pos - Atomics.load(ctl, readAt(c))) | 0;
        if (lag > worstLag) {
          worstLag = lag;
          worst = c;
        }
      }
      if (worst < 0) break;
      if (Atomics.compareExchange(ctl, stateAt(worst), IDLE, EVICTED) !== IDLE) break;
      evicted++;
    }
    this.#free = this.#measureFree();
    return evicted;
  }

  /** Free bytes: the capacity minus the lag of the slowest consumer taking part. */
  #measureFree(): number {
    const v = this.#v;
    const ctl = v.ctl;
    let maxLag = 0;
    for (let c = 0; c < v.nodes; c++) {
      if (c === this.#self) continue;
      const state = Atomics.load(ctl, stateAt(c));
      if (state === EVICTED || state === ABSENT) continue;
      const lag = (this.#pos - Atomics.load(ctl, readAt(c))) | 0;
      if (lag > maxLag) maxLag = lag;
    }
    return v.capacity - maxLag;
  }
}

/** What {@link RingReader.drain} found, as bits. */
export const Drain = {
  /** Records are left (the budget ran out): drain again soon. */
  MORE: 1,
  /** The producer had skipped ahead of this consumer: records were lost. */
  LAGGED: 2,
  /** The producer waits for space: ring its doorbell. */
  WAKE_PRODUCER: 4,
} as const;

/**
 * A consumer's end of a ring.
 *
 * @example See {@link RingWriter}.
 * ```ts
 * import { createRing, RingReader } from "./ring.ts";
 * const reader = new RingReader(createRing(2, 4096), 2, 1);
 * reader.attach();
 * console.log(reader.drain(() => {}, 1024)); // 0: nothing to read
 * ```
 */
export class RingReader {
  readonly #v: RingViews;
  readonly #self: number;
  #pos = 0;
  /** Records read since attach (for the lag report). */
  #lagged = 0;

  /**
   * @param sab The producer's ring.
   * @param nodes Number of nodes.
   * @param self This consumer's node index.
   */
  constructor(sab: SharedArrayBuffer, nodes: number, self: number) {
    this.#v = new RingViews(sab, nodes);
    this.#self = self;
  }

  /** Times this consumer was skipped ahead since it was created. */
  get lagged(): number {
    return this.#lagged;
  }

  /** Starts taking part from the current write position (nothing older is read). */
  attach(): void {
    const ctl = this.#v.ctl;
    this.#pos = Atomics.load(ctl, WRITE);
    // The cursor first, then the state: a producer that sees the state sees the cursor.
    Atomics.store(ctl, readAt(this.#self), this.#pos);
    Atomics.store(ctl, stateAt(this.#self), IDLE);
  }

  /** Stops taking part: the producer no longer waits for this consumer. */
  detach(): void {
    Atomics.store(this.#v.ctl, stateAt(this.#self), ABSENT);
  }

  /** True when records are waiting. */
  get pending(): boolean {
    return Atomics.load(this.#v.ctl, WRITE) !== this.#pos;
  }

  /**
   * Hands every record written so far (up to about `budget` bytes) to `visit`, in order,
   * in place: the views are valid during the call only. Returns bits of {@link Drain}.
   */
  drain(visit: (u8: Uint8Array, i32: Int32Array, at: number) => void, budget: number): number {
    const v = this.#v;
    const ctl = v.ctl;
    const state = stateAt(this.#self);
    let result = 0;
    let was = Atomics.compareExchange(ctl, state, IDLE, DRAINING);
    if (was === EVICTED) {
      // Skipped ahead: resume at the current end, then read as usual.
      this.#lagged++;
      result |= Drain.LAGGED;
      this.attach();
      was = Atomics.compareExchange(ctl, state, IDLE, DRAINING);
    }
    if (was !== IDLE) return result;
    const u8 = v.u8;
    const i32 = v.i32;
    const capacity = v.capacity;
    const mask = v.mask;
    let r = this.#pos;
    const w = Atomics.load(ctl, WRITE);
    let taken = 0;
    try {
      while (r !== w && taken < budget) {
        const idx = r & mask;
        const tail = capacity - idx;
        if (tail < RECORD_HEADER) {
          r = (r + tail) | 0;
          continue;
        }
        const size = i32[idx >> 2];
        if ((i32[(idx >> 2) + 2] & 0xff) !== KIND_PAD) visit(u8, i32, idx);
        r = (r + size) | 0;
        taken += size;
      }
    } finally {
      this.#pos = r;
      Atomics.store(ctl, readAt(this.#self), r);
      Atomics.store(ctl, state, IDLE);
    }
    if (r !== w) result |= Drain.MORE;
    if (
      Atomics.load(ctl, WANT_SPACE) === 1 && Atomics.compareExchange(ctl, WANT_SPACE, 1, 0) === 1
    ) {
      result |= Drain.WAKE_PRODUCER;
    }
    return result;
  }
}

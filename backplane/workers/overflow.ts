/**
 * Records a publisher could not put in its ring yet (a consumer has not read far enough),
 * kept in order, within a byte limit, until the ring has room: per-publisher order holds
 * because nothing new goes to the ring while this queue is not empty.
 *
 * @module
 */

import { readSize } from "./records.ts";
import type { RingWriter } from "./ring.ts";

const CHUNK = 256 * 1024;

interface Chunk {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  /** Bytes written. */
  used: number;
  /** Bytes already moved to the ring. */
  read: number;
}

function newChunk(size: number): Chunk {
  const buf = new ArrayBuffer(size);
  return { u8: new Uint8Array(buf), i32: new Int32Array(buf), used: 0, read: 0 };
}

/**
 * A bounded FIFO of records.
 *
 * @example
 * ```ts
 * import { Overflow } from "./overflow.ts";
 * import { recordSize, writeRecord } from "./records.ts";
 *
 * const queue = new Overflow(1 << 20);
 * const size = recordSize(1, 2);
 * const at = queue.reserve(size);
 * writeRecord(queue.u8, queue.i32, at, 1, 1, 1, false, new Uint8Array([97]), new Uint8Array(2));
 * queue.commit(size);
 * console.log(queue.bytes, queue.records); // 40 1
 * ```
 */
export class Overflow {
  /** Bytes the queue may hold. */
  readonly limit: number;
  #chunks: Chunk[] = [];
  #bytes = 0;
  #records = 0;
  #tail: Chunk | null = null;

  /** @param limit Bytes the queue may hold. */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Records queued. */
  get records(): number {
    return this.#records;
  }

  /** The chunk of the last reservation, as bytes. */
  get u8(): Uint8Array {
    return this.#tail!.u8;
  }

  /** The chunk of the last reservation, as words. */
  get i32(): Int32Array {
    return this.#tail!.i32;
  }

  /**
   * Room for a record of `size` bytes: its offset in {@link Overflow.u8} /
   * {@link Overflow.i32}, or -1 when the queue would pass its limit.
   */
  reserve(size: number): number {
    if (this.#bytes + size > this.limit) return -1;
    let tail = this.#tail;
    if (tail === null || tail.used + size > tail.u8.length) {
      tail = newChunk(Math.max(CHUNK, size));
      this.#chunks.push(tail);
      this.#tail = tail;
    }
    return tail.used;
  }

  /** Keeps the record reserved last. */
  commit(size: number): void {
    this.#tail!.used += size;
    this.#bytes += size;
    this.#records++;
  }

  /** Size of the oldest record (0 when empty). */
  get headSize(): number {
    const head = this.#chunks[0];
    return head === undefined ? 0 : readSize(head.i32, head.read);
  }

  /**
   * Moves records to `ring`, oldest first, until the ring is full or the queue empty.
   * Returns true when the queue is empty.
   */
  moveTo(ring: RingWriter): boolean {
    const chunks = this.#chunks;
    while (chunks.length > 0) {
      const head = chunks[0];
      while (head.read < head.used) {
        const size = readSize(head.i32, head.read);
        const at = ring.reserve(size);
        if (at < 0) return false;
        ring.u8.set(head.u8.subarray(head.read, head.read + size), at);
        ring.commit(size);
        head.read += size;
        this.#bytes -= size;
        this.#records--;
      }
      chunks.shift();
      if (head === this.#tail) this.#tail = null;
    }
    return true;
  }

  /** Hands each record queued to `visit`, oldest first (the queue is left as it is). */
  forEach(visit: (u8: Uint8Array, i32: Int32Array, at: number) => void): void {
    for (const chunk of this.#chunks) {
      for (let at = chunk.read; at < chunk.used; at += readSize(chunk.i32, at)) {
        visit(chunk.u8, chunk.i32, at);
      }
    }
  }

  /** Forgets everything queued; returns how many records that was. */
  clear(): number {
    const n = this.#records;
    this.#chunks = [];
    this.#tail = null;
    this.#bytes = 0;
    this.#records = 0;
    return n;
  }
}

/**
 * Buffers the engine owns beyond the outbox arena (frames too large for it, messages lent
 * to handlers), shared by reference count, reused or freed the moment the last holder is
 * done with them.
 *
 * @module
 */

/** Pool size classes are multiples of this. */
const POOL_GRAIN = 4 * 1024;
/** Frames above this are not pooled. */
const POOL_MAX_FRAME = 4 * 1024 * 1024;
/** Bytes of free buffers the pool keeps at most. */
const POOL_MAX_FREE = 8 * 1024 * 1024;

/**
 * Buffers for frames too large for the arena and for messages the parser lends to handlers,
 * reused once every holder (the creator, each connection queue that took it) has let go.
 * Without it every large broadcast allocates a buffer that lives until the next garbage
 * collection, and a steady stream of them keeps tens of megabytes of garbage (V8 collects
 * external memory lazily) and fragments the heap.
 *
 * A buffer from {@link FramePool.acquire} carries a reference count: 1 for its creator until
 * {@link FramePool.release}, plus 1 per connection queue holding it (taken and given back by
 * the {@link Outbox}). When the last reference goes, the buffer returns to the free lists,
 * or, when it is too large to keep or the lists are full, is detached: its memory is freed
 * at once instead of at the next collection (`ArrayBuffer.prototype.transfer(0)` releases
 * the backing store; nothing else can hold a view of it, the counts say so). Buffers not
 * from the pool pass through untouched. Counts live in a `WeakMap`, so a buffer lost with an
 * abandoned connection is simply collected.
 *
 * @example
 * ```ts
 * import { FramePool } from "./frame_pool.ts";
 *
 * const pool = new FramePool();
 * const frame = pool.acquire(100_000); // the creator's reference
 * pool.retain(frame); // a queue takes one
 * pool.release(frame); // the creator is done
 * pool.release(frame); // the queue wrote it: back to the pool
 * console.log(pool.acquire(100_000).buffer === frame.buffer); // true
 * ```
 */
export class FramePool {
  readonly #refs = new WeakMap<ArrayBuffer, number>();
  readonly #free = new Map<number, ArrayBuffer[]>();
  #freeBytes = 0;

  /** A buffer of `length` bytes (contents undefined) with one reference, the caller's. */
  acquire(length: number): Uint8Array {
    if (length > POOL_MAX_FRAME) {
      const large = new ArrayBuffer(length);
      this.#refs.set(large, 1);
      return new Uint8Array(large);
    }
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
    if (size > POOL_MAX_FRAME || this.#freeBytes + size > POOL_MAX_FREE) {
      buf.transfer(0);
      return;
    }
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

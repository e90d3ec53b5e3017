/**
 * Which workers want a topic, in shared memory: a publisher asks before it hands a message
 * to the other workers, and skips the copy when none of them has a subscriber (the common
 * case of per-user topics whose user is connected to the publishing worker).
 *
 * A table of buckets, each one bit per node: a node sets its bit in a topic's bucket when
 * its first local subscriber of the topic arrives and clears it when its last leaves
 * (counting its own topics per bucket, since several share a bucket). The update is
 * synchronous, before the subscribing call returns, so a publish that starts after it
 * (in real time, e.g. caused by the subscriber's client) sees it: no announcement can be
 * overtaken, as messages on a channel could. Collisions only cost a useless copy.
 *
 * @module
 */

/** Buckets of a table (a power of two). */
export const INTEREST_BUCKETS = 16_384;

/**
 * The bucket of a topic (FNV-1a over its UTF-16 units).
 *
 * @example
 * ```ts
 * import { INTEREST_BUCKETS, interestBucket } from "./interest.ts";
 * const b = interestBucket("room:42");
 * console.log(b >= 0 && b < INTEREST_BUCKETS, b === interestBucket("room:42")); // true true
 * ```
 */
export function interestBucket(topic: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
  return (h >>> 0) & (INTEREST_BUCKETS - 1);
}

/**
 * One node's view of the shared interest table.
 *
 * @example Two nodes in one thread (each would be a worker)
 * ```ts
 * import { InterestTable, interestBucket } from "./interest.ts";
 *
 * const sab = new SharedArrayBuffer(InterestTable.bytes(3));
 * const a = new InterestTable(sab, 3, 1);
 * const b = new InterestTable(sab, 3, 2);
 * const bucket = interestBucket("room");
 * console.log(a.othersWant(bucket)); // false
 * b.add(bucket);
 * console.log(a.othersWant(bucket), b.othersWant(bucket)); // true false
 * b.remove(bucket);
 * console.log(a.othersWant(bucket)); // false
 * ```
 */
export class InterestTable {
  readonly #bits: Int32Array;
  readonly #nodes: number;
  readonly #node: number;
  readonly #words: number;
  readonly #myWord: number;
  readonly #myBit: number;
  /** This node's topics per bucket. */
  readonly #own: Uint16Array;

  /** Bytes of the shared memory a table of `nodes` nodes takes. */
  static bytes(nodes: number): number {
    return INTEREST_BUCKETS * Math.ceil(nodes / 32) * 4;
  }

  /**
   * @param sab The shared table ({@link InterestTable.bytes} bytes).
   * @param nodes Number of nodes.
   * @param node This node's index.
   */
  constructor(sab: SharedArrayBuffer, nodes: number, node: number) {
    this.#nodes = nodes;
    this.#node = node;
    this.#words = Math.ceil(nodes / 32);
    this.#bits = new Int32Array(sab, 0, INTEREST_BUCKETS * this.#words);
    this.#myWord = node >> 5;
    this.#myBit = 1 << (node & 31);
    this.#own = new Uint16Array(INTEREST_BUCKETS);
  }

  /** This node has a first subscriber of a topic of `bucket`. */
  add(bucket: number): void {
    if (this.#own[bucket]++ === 0) {
      Atomics.or(this.#bits, bucket * this.#words + this.#myWord, this.#myBit);
    }
  }

  /** This node's last subscriber of a topic of `bucket` is gone. */
  remove(bucket: number): void {
    if (this.#own[bucket] === 0) return;
    if (--this.#own[bucket] === 0) {
      Atomics.and(this.#bits, bucket * this.#words + this.#myWord, ~this.#myBit);
    }
  }

  /** Clears every bit of this node (it stops, or starts again after a crash). */
  clear(): void {
    this.#own.fill(0);
    InterestTable.clearNode(this.#bits.buffer as SharedArrayBuffer, this.#nodes, this.#node);
  }

  /** True when a node other than this one may have a subscriber of a topic of `bucket`. */
  othersWant(bucket: number): boolean {
    const bits = this.#bits;
    const words = this.#words;
    const base = bucket * words;
    for (let w = 0; w < words; w++) {
      let v = Atomics.load(bits, base + w);
      if (w === this.#myWord) v &= ~this.#myBit;
      if (v !== 0) return true;
    }
    return false;
  }

  /**
   * Clears the bits of `node` in every bucket: the supervisor does it for a worker that
   * died without clearing them itself.
   */
  static clearNode(sab: SharedArrayBuffer, nodes: number, node: number): void {
    const words = Math.ceil(nodes / 32);
    const bits = new Int32Array(sab, 0, INTEREST_BUCKETS * words);
    const word = node >> 5;
    const mask = ~(1 << (node & 31));
    for (let b = 0; b < INTEREST_BUCKETS; b++) Atomics.and(bits, b * words + word, mask);
  }
}

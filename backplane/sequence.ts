/**
 * Sequence numbering on both ends of the backplane.
 *
 * Numbers run per (publisher node, topic), not per node: a node receives only the topics
 * it has local subscribers for, so with one counter per node every message the publisher
 * sent on some other topic would look like a loss. Per-topic numbering is also exactly
 * the order guarantee the backplane gives (per publisher, per topic); it holds on every
 * transport, Redis Cluster shards and one stream per topic included.
 *
 * - {@link PublishSequence}: the publisher's counters, bounded in number: past the bound
 *   every counter restarts under a new epoch, which receivers take as a fresh start.
 * - {@link OriginTracker}: a receiver's last number per publisher for one topic, which
 *   tells in-order, gap and duplicate apart.
 *
 * @module
 */

import { formatNodeId, newEpoch } from "./stamp.ts";

/**
 * One topic's publishing state: its next number and whatever the transport caches with
 * it (the encoded channel name).
 *
 * @example
 * ```ts
 * import type { PublishTopic } from "./sequence.ts";
 * const t: PublishTopic<string> = { seq: 0, key: "fdws:room" };
 * console.log(++t.seq); // 1
 * ```
 */
export interface PublishTopic<K> {
  /** The last number used (0 before the first message). */
  seq: number;
  /** The transport's data for this topic. */
  readonly key: K;
}

/**
 * The publisher side: one counter per topic, at most `limit` topics. A node that publishes
 * to more topics than that (one per user, say) restarts every counter under a new epoch
 * instead of growing without bound.
 *
 * @example
 * ```ts
 * import { PublishSequence } from "./sequence.ts";
 * const seq = new PublishSequence((topic) => `fdws:${topic}`, 2);
 * console.log(++seq.topic("a").seq, ++seq.topic("a").seq, seq.topic("a").key); // 1 2 "fdws:a"
 * const epoch = seq.epoch;
 * seq.topic("b");
 * seq.topic("c"); // a third topic: the counters restart
 * console.log(seq.epoch !== epoch, seq.topic("a").seq); // true 0
 * ```
 */
export class PublishSequence<K> {
  /** The current epoch. */
  epoch: number;
  readonly #topics = new Map<string, PublishTopic<K>>();
  readonly #makeKey: (topic: string) => K;
  readonly #limit: number;

  /**
   * Creates the counters.
   *
   * @param makeKey Computes the transport's data for a topic, once per topic.
   * @param limit Most topics counted at once. Default 100 000.
   * @param epoch First epoch (random by default).
   */
  constructor(makeKey: (topic: string) => K, limit = 100_000, epoch: number = newEpoch()) {
    this.#makeKey = makeKey;
    this.#limit = limit;
    this.epoch = epoch;
  }

  /** The state of `topic`, created at 0 when new. */
  topic(topic: string): PublishTopic<K> {
    let t = this.#topics.get(topic);
    if (t === undefined) {
      if (this.#topics.size >= this.#limit) {
        this.#topics.clear();
        let e = newEpoch();
        while (e === this.epoch) e = newEpoch();
        this.epoch = e;
      }
      t = { seq: 0, key: this.#makeKey(topic) };
      this.#topics.set(topic, t);
    }
    return t;
  }
}

/** What {@link OriginTracker.check} concluded. */
export const Verdict = {
  /** The next message in order (or the first seen from this publisher run): deliver. */
  IN_ORDER: 0,
  /** Messages were skipped: deliver, and report the gap. */
  GAP: 1,
  /** Already seen (a resend): drop. */
  DUPLICATE: 2,
} as const;

interface Origin {
  epoch: number;
  seq: number;
  readonly id: string;
}

/**
 * A receiver's view of one topic: the last number seen from each publisher. The first
 * message of an unknown publisher, or of a new epoch, starts a new count (the node may
 * have subscribed after that publisher started). At most `limit` publishers are
 * remembered; the oldest is forgotten first.
 *
 * @example
 * ```ts
 * import { OriginTracker, Verdict } from "./sequence.ts";
 * const t = new OriginTracker();
 * console.log(t.check(5, 1, 10) === Verdict.IN_ORDER); // true (first seen)
 * console.log(t.check(5, 1, 11) === Verdict.IN_ORDER); // true
 * console.log(t.check(5, 1, 14) === Verdict.GAP, t.expected); // true 12
 * console.log(t.check(5, 1, 13) === Verdict.DUPLICATE); // true
 * console.log(t.origin); // "000000000005"
 * ```
 */
export class OriginTracker {
  /** After a gap verdict: the number that was expected. */
  expected = 0;
  /** After any verdict: the publisher's node id as text. */
  origin = "";
  readonly #origins = new Map<number, Origin>();
  readonly #limit: number;

  /**
   * Creates an empty tracker.
   *
   * @param limit Most publishers remembered. Default 4096.
   */
  constructor(limit = 4096) {
    this.#limit = limit;
  }

  /** Number of publishers remembered. */
  get size(): number {
    return this.#origins.size;
  }

  /** Classifies message `seq` of publisher `node` in `epoch`; see {@link Verdict}. */
  check(node: number, epoch: number, seq: number): number {
    let o = this.#origins.get(node);
    if (o === undefined) {
      if (this.#origins.size >= this.#limit) {
        const oldest = this.#origins.keys().next().value as number;
        this.#origins.delete(oldest);
      }
      o = { epoch, seq, id: formatNodeId(node) };
      this.#origins.set(node, o);
      this.origin = o.id;
      return Verdict.IN_ORDER;
    }
    this.origin = o.id;
    if (o.epoch !== epoch) {
      o.epoch = epoch;
      o.seq = seq;
      return Verdict.IN_ORDER;
    }
    const expected = o.seq + 1;
    if (seq === expected) {
      o.seq = seq;
      return Verdict.IN_ORDER;
    }
    if (seq < expected) return Verdict.DUPLICATE;
    this.expected = expected;
    o.seq = seq;
    return Verdict.GAP;
  }
}

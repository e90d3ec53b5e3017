/**
 * The cross-worker backplane composed with another one (Redis) when `serve({ workers,
 * backplane })` is given both: every worker (and the main thread) is a node of both.
 *
 * - A publish goes to the other workers of this process through shared memory, and to
 *   the other processes through Redis, from the publishing worker's own connection: the
 *   order of one publisher holds on both paths, and no thread relays for the others.
 * - Each worker subscribes on Redis to the topics it has subscribers for (as without
 *   workers). Redis also hands it what a sibling worker published, which it already got
 *   through shared memory: it drops those by their origin (every node's Redis id is in
 *   the shared control area before that node publishes anything).
 *
 * So every client of every worker of every process gets each message once. The cost is a
 * Redis subscription per worker (the process receives a message once per worker that has
 * subscribers for it) instead of one per process; see docs/scale-out.md.
 *
 * @module
 */

import {
  type Backplane,
  type BackplaneFactory,
  type BackplaneHandlers,
  type BackplaneStats,
  emptyStats,
} from "../../core/backplane.ts";
import type { IoLoop } from "../../core/io_loop.ts";
import { formatNodeId } from "../stamp.ts";
import type { WorkersBackplane, WorkersSlot } from "./workers_backplane.ts";

/** A publish made before the worker joined, replayed at the join. */
interface Early {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly binary: boolean;
}

/** Most publishes kept before the join. */
const EARLY_LIMIT = 10_000;

/**
 * Both backplanes as one (see the module).
 *
 * @example
 * ```ts
 * import { composeBackplanes } from "./compose.ts";
 * import type { WorkersSlot } from "./workers_backplane.ts";
 * import { redisBackplane } from "../redis/redis_backplane.ts";
 * import { serve } from "../../server/serve.ts";
 *
 * declare const slot: WorkersSlot;
 * const factory = composeBackplanes(slot, redisBackplane({ url: "redis://127.0.0.1:6379" }));
 * serve({ backplane: factory });
 * ```
 */
export class ComposedBackplane implements Backplane {
  /** The id other processes see (the Redis node's, also used between workers). */
  readonly nodeId: string;
  /** The cross-worker part. */
  readonly local: WorkersBackplane;
  /** The other part (Redis). */
  readonly remote: Backplane;
  readonly #stats: BackplaneStats = emptyStats();
  #early: Early[] | null = [];
  #earlyDropped = 0;
  #siblings = new Set<string>();
  #generation = -1;

  /**
   * @param loop The engine's loop.
   * @param handlers The engine's handlers.
   * @param slot Where the cross-worker part is created (and joins).
   * @param remote The other backplane's factory.
   */
  constructor(
    loop: IoLoop,
    handlers: BackplaneHandlers,
    slot: WorkersSlot,
    remote: BackplaneFactory,
  ) {
    this.remote = remote(loop, {
      message: (topic, payload, binary, origin) => {
        if (!this.#isSibling(origin)) handlers.message(topic, payload, binary, origin);
      },
      gap: (gap) => {
        // A sibling's messages came through shared memory: a loss on Redis is not one.
        if (!this.#isSibling(gap.origin)) handlers.gap?.(gap);
      },
      error: (error) => handlers.error?.(error),
    });
    this.nodeId = this.remote.nodeId;
    this.local = slot.create(loop, handlers, {
      nodeId: parseInt(this.remote.nodeId, 16),
      onJoin: () => this.#joined(),
    });
    // The main thread's node joins inside create().
    if (this.local.control !== null) this.#joined();
  }

  #joined(): void {
    const early = this.#early;
    this.#early = null;
    if (early === null) return;
    for (const e of early) this.publish(e.topic, e.payload, e.binary);
  }

  #isSibling(origin: string): boolean {
    const control = this.local.control;
    if (control === null) return false;
    const generation = control.generation;
    if (generation !== this.#generation) {
      this.#generation = generation;
      const siblings = new Set<string>();
      const self = this.local.index;
      for (let n = 0; n < control.nodes; n++) {
        const id = control.nodeId(n);
        if (n !== self && id !== 0) siblings.add(formatNodeId(id));
      }
      this.#siblings = siblings;
    }
    return this.#siblings.has(origin);
  }

  /** Both parts' counters, summed (`connected`: both are). */
  get stats(): Readonly<BackplaneStats> {
    const a = this.local.stats;
    const b = this.remote.stats;
    const s = this.#stats;
    s.published = a.published + b.published;
    s.received = a.received + b.received;
    s.gaps = a.gaps + b.gaps;
    s.missed = a.missed + b.missed;
    s.duplicates = a.duplicates + b.duplicates;
    s.dropped = a.dropped + b.dropped + this.#earlyDropped;
    s.foreign = a.foreign + b.foreign;
    s.buffered = a.buffered + b.buffered;
    s.reconnects = a.reconnects + b.reconnects;
    s.errors = a.errors + b.errors;
    s.connected = a.connected && b.connected;
    s.lastError = b.lastError ?? a.lastError;
    return s;
  }

  subscribe(topic: string): void {
    this.local.subscribe(topic);
    this.remote.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    this.local.unsubscribe(topic);
    this.remote.unsubscribe(topic);
  }

  publish(topic: string, payload: Uint8Array, binary: boolean): void {
    const early = this.#early;
    if (early !== null) {
      // Not joined: a sibling could not yet tell this node's Redis messages from a
      // stranger's, and would get them twice. Kept until the join (a worker serves no
      // client before it, so this only holds what its top-level code published).
      if (early.length < EARLY_LIMIT) early.push({ topic, payload: payload.slice(), binary });
      else this.#earlyDropped++;
      return;
    }
    this.local.publish(topic, payload, binary);
    this.remote.publish(topic, payload, binary);
  }

  async close(): Promise<void> {
    await Promise.all([this.local.close(), this.remote.close()]);
  }
}

/**
 * The factory of a {@link ComposedBackplane}.
 *
 * @example
 * ```ts
 * import { composeBackplanes } from "./compose.ts";
 * import { WorkersSlot } from "./workers_backplane.ts";
 * import { redisBackplane } from "../redis/redis_backplane.ts";
 * const factory = composeBackplanes(new WorkersSlot(), redisBackplane({ url: "redis://127.0.0.1:6379" }));
 * console.log(typeof factory); // "function"
 * ```
 */
export function composeBackplanes(slot: WorkersSlot, remote: BackplaneFactory): BackplaneFactory {
  return (loop, handlers) => new ComposedBackplane(loop, handlers, slot, remote);
}

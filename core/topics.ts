/**
 * Topics: which connections of a manager subscribe to what, and the seam where other
 * managers (worker threads, other hosts through a broker) join in.
 *
 * @module
 */

/**
 * Where a manager's topics meet subscribers outside it: other workers of the process, other
 * processes or hosts through a broker. The manager tells it when a topic gains its first
 * local subscriber or loses its last one (so that only topics someone here wants are
 * subscribed upstream), and hands it every local publish; the backend hands back what
 * others published through the `deliver` function it was attached with. Without a backend
 * (the default) topics stay inside the manager.
 *
 * @example A backend that records what it is told
 * ```ts
 * import type { Backplane } from "./topics.ts";
 *
 * const seen: string[] = [];
 * const recorder: Backplane = {
 *   attach: () => seen.push("attached"),
 *   subscribed: (topic) => seen.push(`+${topic}`),
 *   unsubscribed: (topic) => seen.push(`-${topic}`),
 *   published: (topic) => seen.push(`>${topic}`),
 *   detach: () => seen.push("detached"),
 * };
 * recorder.subscribed("room");
 * console.log(seen); // ["+room"]
 * ```
 */
export interface Backplane {
  /**
   * The manager starts using this backend: `deliver` gives a message published elsewhere
   * to the local subscribers of its topic (never call it with this manager's own messages).
   * `topics` are those with local subscribers right now.
   */
  attach(
    deliver: (topic: string, data: Uint8Array, binary: boolean) => void,
    topics: readonly string[],
  ): void;
  /** `topic` has its first local subscriber. */
  subscribed(topic: string): void;
  /** `topic` lost its last local subscriber. */
  unsubscribed(topic: string): void;
  /** A local publish (already delivered locally), for the subscribers elsewhere. */
  published(topic: string, data: Uint8Array, binary: boolean): void;
  /** The manager stops (its loop ends): release what `attach` started. */
  detach(): void;
}

/**
 * Subscriber sets by topic. A subscriber also keeps the set of its own topics (passed in),
 * so that leaving every topic costs its own topics, not all of them.
 *
 * @example
 * ```ts
 * import { TopicTree } from "./topics.ts";
 *
 * const tree = new TopicTree<string>();
 * const mine = new Set<string>();
 * console.log(tree.add("ada", mine, "room")); // true: the topic's first subscriber
 * console.log(tree.count("room")); // 1
 * console.log(tree.removeAll("ada", mine)); // ["room"]: topics left empty
 * ```
 */
export class TopicTree<S> {
  readonly #topics = new Map<string, Set<S>>();

  /**
   * Subscribes `subscriber` (whose own topic set is `own`) to `topic`.
   * @returns true when `topic` had no subscriber before.
   */
  add(subscriber: S, own: Set<string>, topic: string): boolean {
    let set = this.#topics.get(topic);
    const first = set === undefined;
    if (set === undefined) {
      set = new Set();
      this.#topics.set(topic, set);
    }
    set.add(subscriber);
    own.add(topic);
    return first;
  }

  /**
   * Unsubscribes `subscriber` from `topic`.
   * @returns true when `topic` has no subscriber left (and was subscribed before).
   */
  remove(subscriber: S, own: Set<string> | null, topic: string): boolean {
    own?.delete(topic);
    const set = this.#topics.get(topic);
    if (set === undefined || !set.delete(subscriber)) return false;
    if (set.size > 0) return false;
    this.#topics.delete(topic);
    return true;
  }

  /**
   * Unsubscribes `subscriber` from all of `own`, which is left as it is (the subscriber may
   * take its topics elsewhere).
   * @returns the topics that have no subscriber left.
   */
  removeAll(subscriber: S, own: Set<string>): string[] {
    const emptied: string[] = [];
    for (const topic of own) {
      const set = this.#topics.get(topic);
      if (set === undefined || !set.delete(subscriber)) continue;
      if (set.size === 0) {
        this.#topics.delete(topic);
        emptied.push(topic);
      }
    }
    return emptied;
  }

  /** The subscribers of `topic` (do not modify), or undefined when none. */
  subscribers(topic: string): Set<S> | undefined {
    return this.#topics.get(topic);
  }

  /** Number of subscribers of `topic`. */
  count(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** Topics with at least one subscriber. */
  names(): string[] {
    return [...this.#topics.keys()];
  }
}

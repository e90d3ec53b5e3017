/**
 * Topics: which connections of a manager subscribe to what. (Other managers, on other
 * workers or hosts, join in through a backplane: see backplane.ts.)
 *
 * @module
 */

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

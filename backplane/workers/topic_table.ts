/**
 * The topics a worker has local subscribers for, found from the topic bytes of a record
 * without decoding a string (a hash, then a byte comparison), each with its gap tracker.
 *
 * @module
 */

import { OriginTracker } from "../sequence.ts";

/** A subscribed topic. */
export interface TopicState {
  /** The topic. */
  readonly topic: string;
  /** Its UTF-8 bytes. */
  readonly bytes: Uint8Array;
  /** Hash of the bytes. */
  readonly hash: number;
  /** Last sequence number seen from each publisher. */
  readonly origins: OriginTracker;
}

/** FNV-1a of `length` bytes of `buf` from `start`. */
export function hashBytes(buf: Uint8Array, start: number, length: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < start + length; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  return h >>> 0;
}

const utf8 = new TextEncoder();

/**
 * Subscribed topics by their bytes.
 *
 * @example
 * ```ts
 * import { TopicTable } from "./topic_table.ts";
 * const table = new TopicTable();
 * table.add("room");
 * const bytes = new TextEncoder().encode("xroom");
 * console.log(table.find(bytes, 1, 4)?.topic, table.find(bytes, 0, 4)); // "room" undefined
 * ```
 */
export class TopicTable {
  readonly #byHash = new Map<number, TopicState[]>();
  readonly #byName = new Map<string, TopicState>();

  /** Number of topics. */
  get size(): number {
    return this.#byName.size;
  }

  /** The topics. */
  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** True when `topic` is in the table. */
  has(topic: string): boolean {
    return this.#byName.has(topic);
  }

  /** Adds `topic` (a fresh gap tracker); returns false when it was there. */
  add(topic: string): boolean {
    if (this.#byName.has(topic)) return false;
    const bytes = utf8.encode(topic);
    const state: TopicState = {
      topic,
      bytes,
      hash: hashBytes(bytes, 0, bytes.length),
      origins: new OriginTracker(),
    };
    this.#byName.set(topic, state);
    const list = this.#byHash.get(state.hash);
    if (list === undefined) this.#byHash.set(state.hash, [state]);
    else list.push(state);
    return true;
  }

  /** Removes `topic`; returns false when it was not there. */
  remove(topic: string): boolean {
    const state = this.#byName.get(topic);
    if (state === undefined) return false;
    this.#byName.delete(topic);
    const list = this.#byHash.get(state.hash)!;
    list.splice(list.indexOf(state), 1);
    if (list.length === 0) this.#byHash.delete(state.hash);
    return true;
  }

  /** The topic whose bytes are `buf[start, start + length)`, if subscribed. */
  find(buf: Uint8Array, start: number, length: number): TopicState | undefined {
    const list = this.#byHash.get(hashBytes(buf, start, length));
    if (list === undefined) return undefined;
    for (let k = 0; k < list.length; k++) {
      const s = list[k];
      const key = s.bytes;
      if (key.length !== length) continue;
      let i = 0;
      while (i < length && key[i] === buf[start + i]) i++;
      if (i === length) return s;
    }
    return undefined;
  }
}

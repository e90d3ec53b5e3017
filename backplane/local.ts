/**
 * The default backplane: one process, nothing to share. Publishing counts and returns;
 * nothing ever comes back (the engine has already delivered locally).
 *
 * @module
 */

import type { IoLoop } from "../core/io_loop.ts";
import {
  type Backplane,
  type BackplaneFactory,
  type BackplaneHandlers,
  type BackplaneStats,
  emptyStats,
} from "./backplane.ts";
import { formatNodeId, newNodeId } from "./stamp.ts";

/**
 * A backplane that never leaves the process.
 *
 * @example
 * ```ts
 * import { LocalBackplane } from "./local.ts";
 *
 * const bp = new LocalBackplane();
 * bp.subscribe("room");
 * bp.publish("room", new Uint8Array([1]), true);
 * console.log(bp.stats.published, bp.stats.connected); // 1 true
 * await bp.close();
 * ```
 */
export class LocalBackplane implements Backplane {
  /** A random id, like every node's. */
  readonly nodeId: string = formatNodeId(newNodeId());
  /** Counters: only `published` moves. */
  readonly stats: BackplaneStats = { ...emptyStats(), connected: true };
  #closed = false;

  /** Nothing to do: no other node exists. */
  subscribe(_topic: string): void {}

  /** Nothing to do. */
  unsubscribe(_topic: string): void {}

  /** Counts the message; nobody else is there to receive it. */
  publish(_topic: string, _payload: Uint8Array, _binary: boolean): void {
    if (!this.#closed) this.stats.published++;
  }

  /** Marks it closed. */
  close(): Promise<void> {
    this.#closed = true;
    this.stats.connected = false;
    return Promise.resolve();
  }
}

/**
 * The {@link BackplaneFactory} of {@link LocalBackplane}: the engine's default.
 *
 * @example
 * ```ts
 * import { localBackplane } from "./local.ts";
 * import type { IoLoop } from "../core/io_loop.ts";
 *
 * const bp = localBackplane({} as IoLoop, { message() {} });
 * console.log(bp.stats.connected); // true
 * ```
 */
export const localBackplane: BackplaneFactory = (
  _loop: IoLoop,
  _handlers: BackplaneHandlers,
): Backplane => new LocalBackplane();

/**
 * The manager of client connections opened without one: created on demand and stopped
 * once its last connection has closed, so that a script that only uses clients exits by
 * itself when it has closed its sockets.
 *
 * @module
 */

import { WebSocketManager } from "../core/manager.ts";

/**
 * A claim on a manager for one connection: released when it fails or, once open, closes.
 *
 * @example
 * ```ts
 * import { sharedLease } from "./shared_manager.ts";
 *
 * const lease = sharedLease();
 * // ... connect on lease.manager ...
 * lease.release(); // the last release stops the shared manager
 * ```
 */
export interface Lease<T> {
  /** The manager the connection runs on. */
  readonly manager: WebSocketManager<T>;
  /** Gives the claim back (idempotent). */
  release(): void;
}

interface Shared {
  manager: WebSocketManager<unknown>;
  refs: number;
}

let shared: Shared | null = null;

/** Claims the shared client manager, creating and starting it when there is none. */
export function sharedLease<T>(): Lease<T> {
  if (shared === null) {
    const manager = new WebSocketManager<unknown>();
    manager.start();
    shared = { manager, refs: 0 };
  }
  const entry = shared;
  entry.refs++;
  let released = false;
  return {
    manager: entry.manager as WebSocketManager<T>,
    release(): void {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      // Last connection gone: stop the loop so that the process may exit. The next
      // connect() creates a new manager.
      if (shared === entry) shared = null;
      entry.manager.stop();
    },
  };
}

/** A claim on the application's own manager: releasing it changes nothing. */
export function userLease<T>(manager: WebSocketManager<T>): Lease<T> {
  return { manager, release(): void {} };
}

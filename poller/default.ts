/**
 * Picks the best poller for the running system.
 *
 * @module
 */

import { EpollPoller } from "./epoll.ts";
import { KqueuePoller } from "./kqueue.ts";
import type { Poller, PollerKind } from "./poller.ts";
import { PollerError } from "./poller.ts";
import { SelectPoller } from "./select.ts";

/** The mechanism {@link createPoller} uses by default on an operating system. */
export function defaultPollerKind(os: string = Deno.build.os): PollerKind {
  switch (os) {
    case "linux":
      return "epoll";
    case "darwin":
    case "freebsd":
      return "kqueue";
    default:
      return "select";
  }
}

/**
 * Creates a poller: `kind` when given, else the best one for `Deno.build.os` (epoll on
 * Linux, kqueue on macOS and FreeBSD, select elsewhere). Python's `DefaultSelector`.
 *
 * @example
 * ```ts
 * import { createPoller } from "../mod.ts";
 * const poller = createPoller(); // EpollPoller on Linux
 * console.log(poller.kind);
 * poller.close();
 * ```
 */
export function createPoller(kind: PollerKind = defaultPollerKind()): Poller {
  switch (kind) {
    case "epoll":
      return new EpollPoller();
    case "kqueue":
      return new KqueuePoller();
    case "select":
      return new SelectPoller();
    default:
      throw new PollerError("INVALID_ARGUMENT", `unknown poller "${kind as string}"`);
  }
}

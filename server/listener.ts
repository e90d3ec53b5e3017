/**
 * The listening socket as a poll target: accepts until the backlog is empty, hands each
 * descriptor on, and backs off for a moment when the process is out of descriptors or
 * kernel memory instead of spinning on a readiness it cannot serve.
 *
 * @module
 */

import type { IoLoop, PollTarget } from "../core/io_loop.ts";
import { SyscallError } from "../ffi/errno.ts";
import type { TcpListener } from "../net/tcp.ts";
import { Interest } from "../poller/poller.ts";

/** Pause of the accept loop after a failure that needs backing off (ms). */
const ACCEPT_PAUSE_MS = 100;

/**
 * A listener on a loop.
 *
 * @example
 * ```ts
 * import { ListenerTarget } from "./listener.ts";
 * import type { IoLoop } from "../core/io_loop.ts";
 * import { listenTcp } from "../net/tcp.ts";
 *
 * declare const loop: IoLoop;
 * const stats = { droppedAtLimit: 0 };
 * const target = new ListenerTarget(loop, listenTcp({ port: 0 }), (fd, host, port) => {
 *   console.log("accepted", fd, host, port);
 * }, stats);
 * loop.addTarget(target, 1); // Interest.READABLE
 * ```
 */
export class ListenerTarget implements PollTarget {
  /** The listening descriptor. */
  readonly fd: number;
  /** The socket. */
  readonly listener: TcpListener;
  readonly #loop: IoLoop;
  readonly #onAccept: (fd: number, host: string, port: number) => void;
  readonly #stats: { droppedAtLimit: number };
  #pausedUntil = 0;

  /**
   * @param loop The loop that watches it.
   * @param listener The listening socket (the target closes it).
   * @param onAccept Receives each accepted non-blocking descriptor and its peer's address.
   * @param stats Where the count of connections dropped at the descriptor limit goes.
   */
  constructor(
    loop: IoLoop,
    listener: TcpListener,
    onAccept: (fd: number, host: string, port: number) => void,
    stats: { droppedAtLimit: number },
  ) {
    this.#loop = loop;
    this.#stats = stats;
    this.listener = listener;
    this.fd = listener.fd;
    this.#onAccept = onAccept;
  }

  /** Accepts every waiting connection. */
  onReady(): void {
    const listener = this.listener;
    for (;;) {
      let fd: number;
      try {
        fd = listener.accept();
      } catch (err) {
        // Out of descriptors with no spare, or of kernel memory: stop polling the listener
        // for a moment instead of spinning on a readiness we cannot serve.
        if (!(err instanceof SyscallError)) throw err;
        this.#pausedUntil = this.#loop.now() + ACCEPT_PAUSE_MS;
        this.#loop.modifyTarget(this, 0);
        return;
      }
      if (fd < 0) break;
      this.#onAccept(fd, listener.peer.hostname, listener.peer.port);
    }
    this.#stats.droppedAtLimit = listener.droppedAtLimit;
  }

  /** When the pause ends. */
  nextTimer(): number {
    return this.#pausedUntil === 0 ? Infinity : this.#pausedUntil;
  }

  /** Resumes accepting after a pause. */
  onTimer(now: number): void {
    if (this.#pausedUntil !== 0 && now >= this.#pausedUntil) {
      this.#pausedUntil = 0;
      this.#loop.modifyTarget(this, Interest.READABLE);
    }
  }

  /** Closes the listening socket. */
  close(): void {
    this.listener.close();
  }
}

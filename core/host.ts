/**
 * The two narrow interfaces around a connection: the calls it makes on the manager that
 * runs it ({@link ConnectionHost}), and the moments it reports to the object the
 * application sees ({@link ConnectionUser}, the `WebSocket`). Neither side knows the
 * other's class.
 *
 * @module
 */

import type { OPCODE_PING, OPCODE_PONG } from "../protocol/frame/opcodes.ts";
import type { FrameParser } from "../protocol/frame/parser.ts";
import type { ManagerStats } from "./stats.ts";

/**
 * What `send()` returns besides a byte count (as Bun's `ServerWebSocketSendStatus`: a
 * positive number is the size of the frame queued within the backpressure limit).
 *
 * @example
 * ```ts
 * import { SendStatus } from "./host.ts";
 *
 * function describe(status: number): string {
 *   if (status > 0) return `queued ${status} bytes`;
 *   if (status === SendStatus.BACKPRESSURE) return "queued, over the backpressure limit";
 *   if (status === SendStatus.DROPPED) return "dropped by the backpressure policy";
 *   return "not sent: the connection is closing or closed";
 * }
 * console.log(describe(SendStatus.DROPPED));
 * ```
 */
export const SendStatus = {
  /** Queued, but the connection's unsent bytes are now past the backpressure limit. */
  BACKPRESSURE: -1,
  /** Not queued: the `"drop"` policy dropped it, or the `"close"` policy closed the connection. */
  DROPPED: 0,
  /** Not queued: the connection is closing, closed, still connecting or detached. */
  CLOSED: -2,
} as const;

/**
 * The calls a connection makes on the manager that runs it. `C` is the connection type
 * (generic so that this file does not depend on the connection's).
 *
 * @example The shape, for a test double
 * ```ts
 * import type { ConnectionHost } from "./host.ts";
 *
 * type Calls = keyof ConnectionHost<object>;
 * const some: Calls[] = ["sendData", "sendClose", "detach"];
 * console.log(some.length); // 3
 * ```
 */
export interface ConnectionHost<C> {
  /** The manager this host belongs to (what `ws.manager` returns). */
  readonly owner: object;
  /** Counters the connection updates (bytes and messages in, protocol errors). */
  readonly stats: ManagerStats;
  /** The loop's coarse clock (ms): as of this tick inside one, brought up to date outside. */
  now(): number;
  /** Shared read buffer: connections keep none of their own. */
  readonly readBuffer: Uint8Array;
  /** `readBuffer.length` as a BigInt (FFI fast path). */
  readonly readLength: bigint;
  /**
   * A frame parser for one push: the shared one of `role` when free, else a fresh one.
   * Give it back with {@link ConnectionHost.returnParser}.
   */
  lendParser(conn: C, role: "server" | "client"): FrameParser;
  /**
   * Ends a push with a lent parser: returns true when `conn` must keep it (a frame or
   * message is split across reads; the host then makes itself a new shared one).
   */
  returnParser(conn: C, parser: FrameParser): boolean;
  /** `conn`'s descriptor became writable: write what it has queued. */
  writable(conn: C): void;
  /**
   * Queues a data message (binary or text) for `conn`, within the backpressure policy.
   * @returns the frame's size, or a {@link SendStatus} value.
   */
  sendData(conn: C, data: string | Uint8Array, binary: boolean, compress: boolean): number;
  /** Queues a ping or a pong; false when the backpressure policy refused it. */
  sendControl(
    conn: C,
    opcode: typeof OPCODE_PING | typeof OPCODE_PONG,
    payload: string | Uint8Array,
  ): boolean;
  /** Queues a close frame (code 0: none) and starts the closing-handshake timer. */
  sendClose(conn: C, code: number, reason: string): void;
  /**
   * The close frame queued for `conn` goes out right after the frame in progress even when
   * the peer does not take what is queued before it (that data is dropped): for the answer
   * to the peer's close and for a failed connection.
   */
  expediteClose(conn: C): void;
  /** Finishes `conn` once its close frame is out and the handshake is complete. */
  closeIfFlushed(conn: C): void;
  /** Bytes queued for `conn` that its transport has not taken. */
  buffered(conn: C): number;
  /** `conn` moves to another host: forget it without closing it (its queue goes with it). */
  leave(conn: C): void;
  /** `conn` is finished: forget it, discard its queue, close its descriptor. */
  detach(conn: C, code: number): void;
  /** Reports an exception thrown by application code. */
  reportError(error: unknown, conn: C | null): void;
  /** A deadline was added or moved from outside the loop: recompute the sleep. */
  timersChanged(): void;
  /** Reads `conn` again on the next tick without waiting for readiness. */
  readAgain(conn: C): void;
  /** Stops reading `conn` (and watching it for input) until {@link ConnectionHost.resumeReads}. */
  pauseReads(conn: C): void;
  /** Reads `conn` again, starting with what was kept while paused. */
  resumeReads(conn: C): void;
  /**
   * Recomputes what the poller watches `conn` for: its transport may need the other
   * direction to make progress (TLS reading to write, or writing to read).
   */
  watch(conn: C): void;
  /** Subscribes `conn` to `topic`. */
  subscribe(conn: C, topic: string): void;
  /** Unsubscribes `conn` from `topic`. */
  unsubscribe(conn: C, topic: string): void;
  /** Publishes to `topic`'s subscribers except `except`; returns how many got it. */
  publish(
    topic: string,
    data: string | Uint8Array,
    binary: boolean,
    except: C | null,
    compress: boolean,
  ): number;
}

/**
 * The moments a connection reports to the object the application sees (the WebSocket with
 * its ws4py hooks). Each call is guarded by the connection: an exception goes to
 * {@link ConnectionHost.reportError}.
 *
 * @example A user object that logs
 * ```ts
 * import type { ConnectionUser } from "./host.ts";
 *
 * const log: string[] = [];
 * const user: ConnectionUser = {
 *   opened: () => log.push("open"),
 *   receivedMessage: (data) => log.push(`message ${data.length}`),
 *   pinged: () => log.push("ping"),
 *   ponged: () => log.push("pong"),
 *   drained: () => log.push("drain"),
 *   closed: (code) => log.push(`close ${code}`),
 * };
 * user.opened();
 * console.log(log); // ["open"]
 * ```
 */
export interface ConnectionUser {
  /** The connection is open. */
  opened(): void;
  /**
   * A complete message: a string for text, bytes for binary. `borrowed` bytes are a view
   * valid only until this returns (a manager with `messageBuffers: "borrowed"`).
   */
  receivedMessage(data: string | Uint8Array, borrowed?: boolean): void;
  /** A ping arrived (the pong is already queued). */
  pinged(payload: Uint8Array): void;
  /** A pong arrived. */
  ponged(payload: Uint8Array): void;
  /** Everything queued was written after the socket had been full. */
  drained(): void;
  /** The connection is closed; called once. */
  closed(code: number, reason: string): void;
}

/**
 * The backplane seam: how a WebSocket engine shares topic messages with the other nodes
 * (processes, hosts) of a deployment. The engine delivers every publish to its own local
 * subscribers first, then hands it to the backplane; the backplane carries it to the other
 * nodes, whose engines deliver it to their local subscribers. A backplane never hands a
 * node its own message back.
 *
 * The engine tells the backplane which topics have local subscribers (the first local
 * subscriber of a topic: {@link Backplane.subscribe}; the last one gone:
 * {@link Backplane.unsubscribe}), so a node only receives the topics it needs.
 *
 * Every message carries a stamp (node id, epoch, per-topic sequence): receivers detect
 * messages lost on the way (pub/sub is at-most-once) and report them as a
 * {@link BackplaneGap}, counted in {@link BackplaneStats} and given to
 * {@link BackplaneHandlers.gap}.
 *
 * Without a backplane (the default) topics stay inside their manager. Implementations:
 * the Redis adapter (backplane/redis/) across processes and hosts, and the one that links
 * the workers of `serve({ workers })` in a process.
 *
 * @module
 */

import type { IoLoop } from "./io_loop.ts";

/**
 * Messages from one publisher on one topic that never arrived, or a stream window that
 * was exceeded.
 *
 * - `kind: "sequence"`: the publisher `origin` (epoch `epoch`) numbered the topic's
 *   messages `expected` to `received - 1`, and this node received `received` next: the
 *   messages in between are lost (`received - expected` of them).
 * - `kind: "window"` (streams mode): while this node was disconnected the topic's stream
 *   was trimmed past the last entry it had read, so entries of unknown publishers were
 *   lost; `origin` is `""` and the numbers are 0.
 *
 * @example Tell the subscribers of a topic that they must resynchronise
 * ```ts
 * import type { BackplaneGap } from "./backplane.ts";
 *
 * function onGap(gap: BackplaneGap): string {
 *   return gap.kind === "window"
 *     ? `${gap.topic}: history lost`
 *     : `${gap.topic}: ${gap.received - gap.expected} message(s) from ${gap.origin} lost`;
 * }
 * console.log(onGap({ topic: "room", kind: "sequence", origin: "a1b2c3d4e5f6", epoch: 7, expected: 4, received: 6 }));
 * // "room: 2 message(s) from a1b2c3d4e5f6 lost"
 * ```
 */
export interface BackplaneGap {
  /** The topic whose messages were lost. */
  topic: string;
  /** `"sequence"`: numbered messages missing; `"window"`: a stream trimmed past our position. */
  kind: "sequence" | "window";
  /** Node id of the publisher (12 hex digits), `""` for a window gap. */
  origin: string;
  /** The publisher's epoch. */
  epoch: number;
  /** The sequence number this node expected next. */
  expected: number;
  /** The sequence number it received. */
  received: number;
}

/**
 * What the engine gives a backplane: where messages from other nodes go, and where gaps
 * and errors are reported.
 *
 * @example Deliver messages from other nodes to local subscribers
 * ```ts
 * import type { BackplaneHandlers } from "./backplane.ts";
 *
 * const delivered: string[] = [];
 * const handlers: BackplaneHandlers = {
 *   message(topic, payload, binary, origin) {
 *     // `payload` is a view valid during this call only: encode or copy it now.
 *     delivered.push(`${topic} ${payload.length} ${binary} ${origin}`);
 *   },
 *   gap: (gap) => console.warn("lost messages on", gap.topic),
 *   error: (error) => console.warn("backplane:", error.message),
 * };
 * handlers.message("room", new Uint8Array(3), false, "a1b2c3d4e5f6");
 * console.log(delivered[0]); // "room 3 false a1b2c3d4e5f6"
 * ```
 */
export interface BackplaneHandlers {
  /**
   * A message published on another node, for this node's local subscribers of `topic`.
   * `payload` is a view into the backplane's buffer, valid until this call returns.
   * `binary` is what the publisher passed; `origin` is its node id. Messages of one
   * publisher on one topic arrive in the order it published them.
   */
  message(topic: string, payload: Uint8Array, binary: boolean, origin: string): void;
  /** Messages were lost (see {@link BackplaneGap}). Also counted in the stats. */
  gap?(gap: BackplaneGap): void;
  /**
   * Something went wrong outside any call of the engine (connection refused or lost,
   * authentication failed...). The backplane keeps trying; the error is also in the stats.
   */
  error?(error: Error): void;
}

/**
 * Counters of a backplane, a plain object that the engine can sum across workers.
 *
 * @example A health line
 * ```ts
 * import type { BackplaneStats } from "./backplane.ts";
 *
 * function health(s: BackplaneStats): string {
 *   return `${s.connected ? "up" : "down"} out=${s.published} in=${s.received} gaps=${s.gaps} dropped=${s.dropped}`;
 * }
 * console.log(health({
 *   published: 10, received: 7, gaps: 0, missed: 0, duplicates: 0, dropped: 0, foreign: 0,
 *   buffered: 0, reconnects: 1, errors: 1, connected: true, lastError: "ECONNREFUSED",
 * })); // "up out=10 in=7 gaps=0 dropped=0"
 * ```
 */
export interface BackplaneStats {
  /** Messages handed to `publish()` and accepted (sent, or queued for sending). */
  published: number;
  /** Messages from other nodes handed to the engine. */
  received: number;
  /** Gaps detected (events given to {@link BackplaneHandlers.gap}). */
  gaps: number;
  /** Messages known to be lost: the sum of `received - expected` over sequence gaps. */
  missed: number;
  /** Messages received twice (after a resend) and not delivered again. */
  duplicates: number;
  /** Messages `publish()` could not queue (buffer full, too large) and dropped. */
  dropped: number;
  /** Messages on our channels without a valid stamp (not published by this library). */
  foreign: number;
  /** Bytes of outgoing messages not yet acknowledged by the transport. */
  buffered: number;
  /** Connections re-established after a loss. */
  reconnects: number;
  /** Errors reported (connection failures included). */
  errors: number;
  /** True while every connection the backplane needs is up. */
  connected: boolean;
  /** Message of the last error, or null. */
  lastError: string | null;
}

/**
 * Zeroed {@link BackplaneStats}.
 *
 * @example
 * ```ts
 * import { emptyStats } from "./backplane.ts";
 * console.log(emptyStats().published); // 0
 * ```
 */
export function emptyStats(): BackplaneStats {
  return {
    published: 0,
    received: 0,
    gaps: 0,
    missed: 0,
    duplicates: 0,
    dropped: 0,
    foreign: 0,
    buffered: 0,
    reconnects: 0,
    errors: 0,
    connected: false,
    lastError: null,
  };
}

/**
 * Counts `error` in `stats` and hands it to the engine's `error` handler. A handler that
 * throws goes to the loop's error report: a backplane is never stopped by its user's code.
 *
 * @example
 * ```ts
 * import { emptyStats, reportBackplaneError } from "./backplane.ts";
 * import type { IoLoop } from "./io_loop.ts";
 *
 * declare const loop: IoLoop;
 * const stats = emptyStats();
 * reportBackplaneError(stats, { message() {} }, loop, new Error("ECONNREFUSED"));
 * console.log(stats.errors, stats.lastError); // 1 "ECONNREFUSED"
 * ```
 */
export function reportBackplaneError(
  stats: BackplaneStats,
  handlers: BackplaneHandlers,
  loop: IoLoop,
  error: Error,
): void {
  stats.errors++;
  stats.lastError = error.message;
  callHandler(handlers.error, error, loop);
}

/**
 * Counts `gap` in `stats` (`gaps`; the caller counts what was `missed`, when known) and
 * hands it to the engine's `gap` handler, as {@link reportBackplaneError} does errors.
 *
 * @example
 * ```ts
 * import { emptyStats, reportBackplaneGap } from "./backplane.ts";
 * import type { IoLoop } from "./io_loop.ts";
 *
 * declare const loop: IoLoop;
 * const stats = emptyStats();
 * reportBackplaneGap(stats, { message() {} }, loop, {
 *   topic: "room",
 *   kind: "window",
 *   origin: "",
 *   epoch: 0,
 *   expected: 0,
 *   received: 0,
 * });
 * console.log(stats.gaps); // 1
 * ```
 */
export function reportBackplaneGap(
  stats: BackplaneStats,
  handlers: BackplaneHandlers,
  loop: IoLoop,
  gap: BackplaneGap,
): void {
  stats.gaps++;
  callHandler(handlers.gap, gap, loop);
}

/** Calls the engine's `handler`, if any, with `value`; what it throws goes to the loop. */
function callHandler<V>(handler: ((value: V) => void) | undefined, value: V, loop: IoLoop): void {
  if (handler === undefined) return;
  try {
    handler(value);
  } catch (err) {
    loop.reportError(err);
  }
}

/**
 * A running backplane, created for one loop by a {@link BackplaneFactory}.
 *
 * @example How an engine drives it
 * ```ts
 * import type { Backplane } from "./backplane.ts";
 *
 * const subscribers = new Map<string, number>();
 * function join(backplane: Backplane, topic: string): void {
 *   const n = (subscribers.get(topic) ?? 0) + 1;
 *   subscribers.set(topic, n);
 *   if (n === 1) backplane.subscribe(topic); // first local subscriber
 * }
 * function leave(backplane: Backplane, topic: string): void {
 *   const n = (subscribers.get(topic) ?? 0) - 1;
 *   if (n > 0) subscribers.set(topic, n);
 *   else {
 *     subscribers.delete(topic);
 *     backplane.unsubscribe(topic); // last local subscriber gone
 *   }
 * }
 * function publish(backplane: Backplane, topic: string, text: string): void {
 *   // ...deliver to local subscribers first, then:
 *   backplane.publish(topic, new TextEncoder().encode(text), false);
 * }
 * console.log(typeof join, typeof leave, typeof publish); // "function" "function" "function"
 * ```
 */
export interface Backplane {
  /** This node's id (12 hex digits), the `origin` other nodes see on its messages. */
  readonly nodeId: string;
  /** Live counters. */
  readonly stats: Readonly<BackplaneStats>;
  /** Starts receiving `topic` from other nodes. Idempotent. Never throws for I/O reasons. */
  subscribe(topic: string): void;
  /** Stops receiving `topic`. Idempotent. */
  unsubscribe(topic: string): void;
  /**
   * Sends a message to the other nodes' subscribers of `topic` (the engine has delivered
   * it locally). The bytes are copied before it returns. Never throws for I/O reasons and
   * never blocks: when the message cannot be queued it is dropped and counted.
   */
  publish(topic: string, payload: Uint8Array, binary: boolean): void;
  /**
   * Stops: refuses further publishes, sends what is queued (bounded in time), then closes
   * every descriptor it opened. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Creates a backplane for one loop. A deployment option (e.g. `redisBackplane({ url })`)
 * returns one; each worker's engine calls it with its own loop and handlers.
 *
 * @example
 * ```ts
 * import type { Backplane, BackplaneFactory } from "./backplane.ts";
 *
 * declare function connectSomewhere(): Backplane;
 * const factory: BackplaneFactory = (_loop, _handlers) => connectSomewhere();
 * console.log(typeof factory); // "function"
 * ```
 */
export type BackplaneFactory = (loop: IoLoop, handlers: BackplaneHandlers) => Backplane;

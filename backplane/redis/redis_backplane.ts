/**
 * The Redis backplane: nodes of a deployment share topic messages through one Redis
 * server, over the project's own sockets in the engine's poller (no Node layer).
 *
 * Modes:
 * - `"pubsub"` (default): PUBLISH / SUBSCRIBE, one channel per topic (`prefix + topic`).
 *   At-most-once: messages published while a node is disconnected are lost for it, and
 *   the stamps tell it so ({@link BackplaneGap}).
 * - `"sharded"`: SPUBLISH / SSUBSCRIBE (Redis 7), the same on one endpoint. The commands
 *   that Redis Cluster routes by slot; the cluster topology itself (one subscriber per
 *   shard, MOVED redirects) is not handled here.
 * - `"streams"`: XADD with `MAXLEN ~ streamMaxLen` to one stream per topic, read with
 *   XREAD BLOCK on a connection of its own from the last IDs read: after a reconnect a
 *   node catches up on what it missed, within the retained window. A window exceeded
 *   (the stream was trimmed past our position, or lost) is reported as a gap.
 *
 * Two connections per node: one for commands (publishing), one that receives (SUBSCRIBE
 * or XREAD BLOCK). Each reconnects on its own with exponential backoff and jitter, and
 * subscribes again to every topic. Outgoing messages are kept until Redis acknowledged
 * them, within `bufferLimit` bytes: while Redis is down they wait (and go out once it is
 * back; a message Redis may have run before the loss is sent again and receivers drop the
 * duplicate by its number); past the limit new messages are dropped and counted.
 *
 * @module
 */

import type { IoLoop } from "../../core/io_loop.ts";
import type { RespCursor } from "../../protocol/resp/cursor.ts";
import {
  arrayHeaderSize,
  bulkSize,
  encodeCommand,
  writeBulk,
  writeBulkHeader,
  writeCrlf,
} from "../../protocol/resp/encoder.ts";
import { RespError, RespProtocolError } from "../../protocol/resp/errors.ts";
import { decodeReply } from "../../protocol/resp/value.ts";
import {
  type Backplane,
  type BackplaneFactory,
  type BackplaneGap,
  type BackplaneHandlers,
  type BackplaneStats,
  emptyStats,
  reportBackplaneError,
  reportBackplaneGap,
} from "../../core/backplane.ts";
import { OriginTracker, PublishSequence, Verdict } from "../sequence.ts";
import {
  formatNodeId,
  MAX_NODE_ID,
  newNodeId,
  readStamp,
  Stamp,
  STAMP_SIZE,
  writeStamp,
} from "../stamp.ts";
import { type ConnectionConfig, type ConnectionOwner, RedisConnection } from "./connection.ts";
import { RedisBackplaneError } from "./errors.ts";
import { parseRedisUrl, type RedisEndpoint } from "./url.ts";

/** How messages travel through Redis (see the module). */
export type RedisBackplaneMode = "pubsub" | "sharded" | "streams";

/**
 * Options of the Redis backplane. Every field has a default.
 *
 * @example Streams mode with a longer history, on database 2 of a password-protected server
 * ```ts
 * import type { RedisBackplaneOptions } from "./redis_backplane.ts";
 * const options: RedisBackplaneOptions = {
 *   url: "redis://:s3cret@10.0.0.5:6379/2",
 *   mode: "streams",
 *   streamMaxLen: 100_000,
 * };
 * console.log(options.mode); // "streams"
 * ```
 */
export interface RedisBackplaneOptions {
  /** `redis://[[user]:password@]host[:port][/db]`. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Default `"pubsub"`. */
  mode?: RedisBackplaneMode;
  /** Prefix of channel and stream names. Default `"fdws:"`. */
  prefix?: string;
  /** This node's id (1 to 2^48 - 1). Default: random per process. */
  nodeId?: number;
  /** First epoch of this node's numbering. Default: random. */
  epoch?: number;
  /** Deadline of a connection attempt (TCP and handshake), ms. Default 5000. */
  connectTimeout?: number;
  /** First reconnection delay, ms (doubles per failure, with jitter). Default 100. */
  reconnectMin?: number;
  /** Longest reconnection delay, ms. Default 5000. */
  reconnectMax?: number;
  /** A connection quiet for this long is pinged, ms (0: never). Default 5000. */
  healthInterval?: number;
  /** Bytes of outgoing messages kept until Redis acknowledges them. Default 16 MiB. */
  bufferLimit?: number;
  /** Largest payload published or received, bytes. Default 1 MiB. */
  maxMessageSize?: number;
  /** Streams: `MAXLEN ~` of each topic's stream. Default 10 000. */
  streamMaxLen?: number;
  /** Streams: entries read per stream per XREAD. Default 100. */
  streamReadCount?: number;
  /** Streams: XREAD BLOCK timeout, ms. Default 5000. */
  streamBlock?: number;
  /** How long close() waits for queued messages to be acknowledged, ms. Default 2000. */
  closeTimeout?: number;
  /** Topics a node numbers at once before it restarts its numbering. Default 100 000. */
  publishTopicLimit?: number;
}

const utf8 = new TextEncoder();
const ascii = (s: string): Uint8Array => utf8.encode(s);

// Writer tags.
const TAG_PUBLISH = 1;
const TAG_UNBLOCK = 2;
// Reader tags.
const TAG_CLIENT_ID = 10;
const TAG_POSITION = 11;
const TAG_XREAD = 12;
const TAG_WINDOW = 13;

const FIELD = ascii("d");

/** One subscribed topic. */
interface TopicState {
  readonly topic: string;
  /** Channel or stream name, as bytes. */
  readonly key: Uint8Array;
  readonly hash: number;
  readonly origins: OriginTracker;
  active: boolean;
  /** Streams: the last entry id read. */
  readonly lastId: Uint8Array;
  lastIdLength: number;
  /** Streams: lastId is known (read, or asked for). */
  positioned: boolean;
  positionPending: boolean;
  /** When subscribe() was called (loop clock). */
  readonly subscribedAt: number;
  /** Streams: an entry was read from the stream (it existed with content). */
  readAny: boolean;
}

function hashBytes(buf: Uint8Array, start: number, length: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < start + length; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  return h >>> 0;
}

/** Subscribed topics by channel name bytes, found without decoding a string. */
class ChannelTable {
  readonly #byHash = new Map<number, TopicState[]>();

  add(state: TopicState): void {
    const list = this.#byHash.get(state.hash);
    if (list === undefined) this.#byHash.set(state.hash, [state]);
    else list.push(state);
  }

  remove(state: TopicState): void {
    const list = this.#byHash.get(state.hash);
    if (list === undefined) return;
    const i = list.indexOf(state);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#byHash.delete(state.hash);
  }

  find(buf: Uint8Array, start: number, length: number): TopicState | undefined {
    const list = this.#byHash.get(hashBytes(buf, start, length));
    if (list === undefined) return undefined;
    for (const s of list) {
      const key = s.key;
      if (key.length !== length) continue;
      let same = true;
      for (let i = 0; i < length; i++) {
        if (key[i] !== buf[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return s;
    }
    return undefined;
  }
}

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < min) {
    throw new RedisBackplaneError("INVALID_OPTION", `${name} must be a number >= ${min}, got ${v}`);
  }
  return v;
}

function parseId(text: string): [bigint, bigint] {
  const dash = text.indexOf("-");
  if (dash < 0) return [BigInt(text), 0n];
  return [BigInt(text.slice(0, dash)), BigInt(text.slice(dash + 1))];
}

function idAfter(a: string, b: string): boolean {
  const [am, as] = parseId(a);
  const [bm, bs] = parseId(b);
  return am > bm || (am === bm && as > bs);
}

/**
 * A backplane over Redis. Create it through {@link redisBackplane} (the engine calls the
 * factory with its loop), or directly with a loop of your own.
 *
 * @example Two nodes in one process (each would normally be its own server process)
 * ```ts
 * import { RedisBackplane } from "./redis_backplane.ts";
 * import type { IoLoop } from "../../core/io_loop.ts";
 *
 * declare const loopA: IoLoop;
 * declare const loopB: IoLoop;
 * const a = new RedisBackplane(loopA, { message() {} }, { url: "redis://127.0.0.1:6379" });
 * const b = new RedisBackplane(loopB, {
 *   message(topic, payload, binary, origin) {
 *     console.log(topic, new TextDecoder().decode(payload), binary, origin === a.nodeId);
 *   },
 * }, { url: "redis://127.0.0.1:6379" });
 * b.subscribe("room");
 * a.publish("room", new TextEncoder().encode("hello"), false); // b prints: room hello false true
 * await a.close();
 * await b.close();
 * ```
 */
export class RedisBackplane implements Backplane {
  /** This node's id as other nodes see it. */
  readonly nodeId: string;
  /** The mode in use. */
  readonly mode: RedisBackplaneMode;
  readonly #stats: BackplaneStats = emptyStats();
  readonly #loop: IoLoop;
  readonly #handlers: BackplaneHandlers;
  readonly #node: number;
  readonly #prefix: Uint8Array;
  readonly #maxMessageSize: number;
  readonly #closeTimeout: number;
  readonly #block: number;
  #readCount: number;
  readonly #topics = new Map<string, TopicState>();
  readonly #table = new ChannelTable();
  readonly #sequence: PublishSequence<Uint8Array>;
  readonly #stamp = new Stamp();
  readonly #writer: RedisConnection;
  readonly #receiver: RedisConnection;
  #closing: Promise<void> | null = null;

  // Streams reader state.
  #readerId = 0;
  #xreadOutstanding = false;
  #positionsOutstanding = 0;
  #restartRead = false;
  #unblockSent = false;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * Creates the backplane and starts connecting.
   *
   * @param loop The loop whose poller watches the connections.
   * @param handlers Where messages, gaps and errors go.
   * @param options See {@link RedisBackplaneOptions}.
   * @throws {RedisBackplaneError} For a bad URL or option (never for I/O).
   */
  constructor(loop: IoLoop, handlers: BackplaneHandlers, options: RedisBackplaneOptions = {}) {
    const endpoint: RedisEndpoint = parseRedisUrl(options.url ?? "redis://127.0.0.1:6379");
    const mode = options.mode ?? "pubsub";
    if (mode !== "pubsub" && mode !== "sharded" && mode !== "streams") {
      throw new RedisBackplaneError("INVALID_OPTION", `unknown mode ${JSON.stringify(mode)}`);
    }
    const node = options.nodeId ?? newNodeId();
    if (!Number.isInteger(node) || node < 1 || node > MAX_NODE_ID) {
      throw new RedisBackplaneError("INVALID_OPTION", "nodeId must be an integer in [1, 2^48 - 1]");
    }
    this.mode = mode;
    this.#loop = loop;
    this.#handlers = handlers;
    this.#node = node;
    this.nodeId = formatNodeId(node);
    this.#prefix = utf8.encode(options.prefix ?? "fdws:");
    this.#maxMessageSize = positive("maxMessageSize", options.maxMessageSize, 1024 * 1024);
    const bufferLimit = positive("bufferLimit", options.bufferLimit, 16 * 1024 * 1024);
    if (bufferLimit < this.#maxMessageSize + 1024) {
      throw new RedisBackplaneError("INVALID_OPTION", "bufferLimit must exceed maxMessageSize");
    }
    this.#closeTimeout = positive("closeTimeout", options.closeTimeout, 2000, 0);
    this.#block = positive("streamBlock", options.streamBlock, 5000);
    this.#readCount = positive("streamReadCount", options.streamReadCount, 100);
    const maxLen = positive("streamMaxLen", options.streamMaxLen, 10_000);
    const healthInterval = positive("healthInterval", options.healthInterval, 5000, 0);
    const epoch = options.epoch;
    if (epoch !== undefined && (!Number.isInteger(epoch) || epoch < 1 || epoch > 0xffffffff)) {
      throw new RedisBackplaneError("INVALID_OPTION", "epoch must be an integer in [1, 2^32 - 1]");
    }

    const head = mode === "streams"
      ? ascii("*8\r\n$4\r\nXADD\r\n")
      : mode === "sharded"
      ? ascii("*3\r\n$8\r\nSPUBLISH\r\n")
      : ascii("*3\r\n$7\r\nPUBLISH\r\n");
    const tail = mode === "streams"
      ? encodeCommand(["MAXLEN", "~", maxLen, "*", "d"]).subarray(arrayHeaderSize(5))
      : new Uint8Array(0);
    // Everything of a publish command before the payload, encoded once per topic.
    const commandHead = (topic: string): Uint8Array => {
      const key = this.#keyOf(topic);
      const out = new Uint8Array(head.length + bulkSize(key.length) + tail.length);
      out.set(head);
      const at = writeBulk(out, head.length, key);
      out.set(tail, at);
      return out;
    };
    this.#sequence = new PublishSequence(
      commandHead,
      positive("publishTopicLimit", options.publishTopicLimit, 100_000),
      epoch,
    );

    const base = {
      endpoint,
      connectTimeout: positive("connectTimeout", options.connectTimeout, 5000),
      backoffMin: positive("reconnectMin", options.reconnectMin, 100),
      backoffMax: positive("reconnectMax", options.reconnectMax, 5000),
      healthInterval,
    };
    const writerConfig: ConnectionConfig = {
      ...base,
      name: `fdws:${this.nodeId}:pub`,
      tracked: true,
      retain: true,
      bufferLimit,
      maxReplyBytes: 1024 * 1024,
      healthTimeout: Math.max(2 * healthInterval, 1000),
    };
    this.#writer = new RedisConnection(loop, writerConfig, this.#writerOwner);
    const streams = mode === "streams";
    const receiverConfig: ConnectionConfig = {
      ...base,
      name: `fdws:${this.nodeId}:${streams ? "read" : "sub"}`,
      tracked: streams,
      retain: false,
      bufferLimit: Infinity,
      maxReplyBytes: streams
        ? Math.max(64 * 1024 * 1024, 4 * this.#maxMessageSize)
        : this.#maxMessageSize + STAMP_SIZE + 64 * 1024,
      healthTimeout: Math.max(2 * healthInterval, 1000) + (streams ? this.#block : 0),
    };
    this.#receiver = new RedisConnection(
      loop,
      receiverConfig,
      streams ? this.#readerOwner : this.#subscriberOwner,
    );
    this.#writer.start();
    this.#receiver.start();
  }

  /** Live counters. */
  get stats(): Readonly<BackplaneStats> {
    const s = this.#stats;
    s.buffered = this.#writer.pendingBytes;
    s.connected = this.#writer.ready && this.#receiver.ready;
    return s;
  }

  /** The topics subscribed (those with local subscribers, as the engine said). */
  get topics(): string[] {
    return [...this.#topics.keys()];
  }

  #keyOf(topic: string): Uint8Array {
    const t = utf8.encode(topic);
    const key = new Uint8Array(this.#prefix.length + t.length);
    key.set(this.#prefix);
    key.set(t, this.#prefix.length);
    return key;
  }

  // ------------------------------------------------------------------ engine API

  /** Starts receiving `topic` from other nodes. */
  subscribe(topic: string): void {
    if (this.#closing !== null || this.#topics.has(topic)) return;
    const key = this.#keyOf(topic);
    const state: TopicState = {
      topic,
      key,
      hash: hashBytes(key, 0, key.length),
      origins: new OriginTracker(),
      active: true,
      lastId: new Uint8Array(48),
      lastIdLength: 0,
      positioned: false,
      positionPending: false,
      subscribedAt: this.#loop.now(),
      readAny: false,
    };
    this.#topics.set(topic, state);
    this.#table.add(state);
    if (this.mode === "streams") {
      this.#restartRead = true;
      this.#pump();
    } else if (this.#receiver.connected) {
      this.#sendSubscriptions(this.mode === "sharded" ? "SSUBSCRIBE" : "SUBSCRIBE", [state]);
    }
  }

  /** Stops receiving `topic`. */
  unsubscribe(topic: string): void {
    const state = this.#topics.get(topic);
    if (state === undefined) return;
    state.active = false;
    this.#topics.delete(topic);
    this.#table.remove(state);
    // Streams: the next XREAD leaves it out; entries still coming for it are ignored.
    if (this.mode !== "streams" && this.#receiver.connected) {
      this.#sendSubscriptions(this.mode === "sharded" ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", [state]);
    }
  }

  /** Sends a message to the other nodes' subscribers of `topic`. */
  publish(topic: string, payload: Uint8Array, binary: boolean): void {
    const stats = this.#stats;
    if (this.#closing !== null) {
      stats.dropped++;
      return;
    }
    const t = this.#sequence.topic(topic);
    // Numbered even when dropped below: receivers then see the loss as a gap.
    const seq = ++t.seq;
    const length = payload.length;
    if (length > this.#maxMessageSize) {
      stats.dropped++;
      this.#report(
        new RedisBackplaneError(
          "MESSAGE_TOO_LARGE",
          `a message of ${length} bytes on ${
            JSON.stringify(topic)
          } exceeds maxMessageSize (${this.#maxMessageSize})`,
        ),
      );
      return;
    }
    const head = t.key;
    const bodyLength = STAMP_SIZE + length;
    const size = head.length + bulkSize(bodyLength);
    const writer = this.#writer;
    const at = writer.reserve(size);
    if (at < 0) {
      stats.dropped++;
      return;
    }
    const buf = writer.buffer;
    buf.set(head, at);
    let p = writeBulkHeader(buf, at + head.length, bodyLength);
    p = writeStamp(buf, p, this.#node, this.#sequence.epoch, seq, binary);
    buf.set(payload, p);
    writeCrlf(buf, p + length);
    writer.commit(size, TAG_PUBLISH);
    stats.published++;
  }

  /** Sends what is queued (waiting up to `closeTimeout` while connected), then closes. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const writer = this.#writer;
    const deadline = performance.now() + this.#closeTimeout;
    while (
      writer.pendingReplies > 0 && writer.connected && performance.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.#stats.dropped += writer.pendingReplies;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    writer.close();
    this.#receiver.close();
    this.#stats.connected = false;
  }

  // ------------------------------------------------------------------ reporting

  #report(error: Error): void {
    reportBackplaneError(this.#stats, this.#handlers, this.#loop, error);
  }

  #gap(gap: BackplaneGap): void {
    reportBackplaneGap(this.#stats, this.#handlers, this.#loop, gap);
  }

  /** A stamped message from the receiving connection. */
  #receive(state: TopicState, buf: Uint8Array, start: number, length: number): void {
    const stats = this.#stats;
    const stamp = this.#stamp;
    if (!readStamp(stamp, buf, start, length)) {
      stats.foreign++;
      return;
    }
    if (stamp.node === this.#node) return;
    const origins = state.origins;
    const verdict = origins.check(stamp.node, stamp.epoch, stamp.seq);
    if (verdict === Verdict.DUPLICATE) {
      stats.duplicates++;
      return;
    }
    if (verdict === Verdict.GAP) {
      stats.missed += stamp.seq - origins.expected;
      this.#gap({
        topic: state.topic,
        kind: "sequence",
        origin: origins.origin,
        epoch: stamp.epoch,
        expected: origins.expected,
        received: stamp.seq,
      });
    }
    stats.received++;
    try {
      this.#handlers.message(
        state.topic,
        buf.subarray(start + STAMP_SIZE, start + length),
        stamp.binary,
        origins.origin,
      );
    } catch (err) {
      this.#loop.reportError(err);
    }
  }

  #connectionDown(error: RedisBackplaneError): void {
    this.#stats.connected = false;
    this.#report(error);
  }

  #connectionReady(wasReady: boolean): void {
    if (wasReady) this.#stats.reconnects++;
  }

  // ------------------------------------------------------------------ writer

  readonly #writerOwner: ConnectionOwner = (() => {
    let wasReady = false;
    return {
      prepare: (): void => {},
      ready: (): void => {
        this.#connectionReady(wasReady);
        wasReady = true;
        // A subscription made while the writer was down may wait for an unblock.
        this.#pump();
      },
      reply: (cursor: RespCursor, tag: number): void => {
        if (cursor.next() !== 0x2d) return; // '-'
        const text = cursor.text();
        if (tag === TAG_UNBLOCK) return;
        this.#report(new RedisBackplaneError("REPLY_ERROR", `Redis refused a publish: ${text}`));
      },
      down: (error: RedisBackplaneError): void => this.#connectionDown(error),
    };
  })();

  // ------------------------------------------------------------------ pub/sub receiver

  #sendSubscriptions(command: string, states: TopicState[]): void {
    // Sharded: one command per channel, since a cluster refuses channels of several slots
    // in one SSUBSCRIBE. Otherwise batches of 512.
    const batch = this.mode === "sharded" ? 1 : 512;
    for (let i = 0; i < states.length; i += batch) {
      const args: (string | Uint8Array)[] = [command];
      for (const s of states.slice(i, i + batch)) args.push(s.key);
      this.#receiver.command(encodeCommand(args), -1);
    }
  }

  readonly #subscriberOwner: ConnectionOwner = (() => {
    let wasReady = false;
    return {
      prepare: (): void => {
        const states = [...this.#topics.values()];
        if (states.length > 0) {
          this.#sendSubscriptions(this.mode === "sharded" ? "SSUBSCRIBE" : "SUBSCRIBE", states);
        }
      },
      ready: (): void => {
        this.#connectionReady(wasReady);
        wasReady = true;
      },
      reply: (cursor: RespCursor): void => this.#onPush(cursor),
      down: (error: RedisBackplaneError): void => this.#connectionDown(error),
    };
  })();

  #onPush(c: RespCursor): void {
    const type = c.next();
    if (type === 0x2d) {
      this.#report(
        new RedisBackplaneError("REPLY_ERROR", `Redis refused a subscription: ${c.text()}`),
      );
      return;
    }
    if ((type !== 0x2a && type !== 0x3e) || c.length < 3) return; // pong, confirmations
    c.next();
    const buf = c.buf;
    if (c.length === 7 ? c.is("message") : c.length === 8 && c.is("smessage")) {
      c.next();
      const state = this.#table.find(buf, c.start, c.length);
      c.next();
      if (state !== undefined && c.length >= 0) this.#receive(state, buf, c.start, c.length);
    }
  }

  // ------------------------------------------------------------------ streams receiver

  readonly #readerOwner: ConnectionOwner = (() => {
    let wasReady = false;
    return {
      prepare: (): void => {
        this.#xreadOutstanding = false;
        this.#positionsOutstanding = 0;
        this.#unblockSent = false;
        this.#readerId = 0;
        const reader = this.#receiver;
        reader.command(encodeCommand(["CLIENT", "ID"]), TAG_CLIENT_ID);
        for (const s of this.#topics.values()) {
          s.positionPending = false;
          if (s.positioned) {
            reader.command(encodeCommand(["XINFO", "STREAM", s.key]), TAG_WINDOW, s);
          }
        }
        this.#pump();
      },
      ready: (): void => {
        this.#connectionReady(wasReady);
        wasReady = true;
      },
      reply: (cursor: RespCursor, tag: number, context: unknown): void => {
        switch (tag) {
          case TAG_CLIENT_ID:
            cursor.next();
            this.#readerId = cursor.integer;
            return;
          case TAG_WINDOW:
            this.#checkWindow(cursor, context as TopicState);
            return;
          case TAG_POSITION:
            this.#onPosition(cursor, context as TopicState[]);
            return;
          case TAG_XREAD:
            this.#onXread(cursor);
            return;
        }
      },
      down: (error: RedisBackplaneError): void => {
        if (error.cause instanceof RespProtocolError && error.cause.code === "RESP_LIMIT") {
          // A batch too large to hold: read fewer entries per call from now on.
          this.#readCount = Math.max(1, this.#readCount >> 1);
        }
        this.#connectionDown(error);
      },
    };
  })();

  /** Sends the reader's next command(s): positions for new topics, else one XREAD BLOCK. */
  #pump(): void {
    if (this.mode !== "streams" || this.#closing !== null) return;
    const reader = this.#receiver;
    if (!reader.connected) return;
    if (this.#xreadOutstanding) {
      if (this.#restartRead && !this.#unblockSent && this.#readerId > 0 && this.#writer.ready) {
        this.#unblockSent = true;
        this.#writer.command(encodeCommand(["CLIENT", "UNBLOCK", this.#readerId]), TAG_UNBLOCK);
      }
      return;
    }
    if (this.#positionsOutstanding > 0) return;
    const unpositioned: TopicState[] = [];
    for (const s of this.#topics.values()) {
      if (s.positioned || s.positionPending) continue;
      s.positionPending = true;
      unpositioned.push(s);
    }
    if (unpositioned.length > 0) {
      // A new topic is read from the moment it was subscribed, in Redis's clock: the
      // server's time minus how long ago (by our clock) the subscription was made. A topic
      // subscribed while Redis was down thus gets what was published since, once Redis is
      // back; and no clock of another machine is involved.
      this.#positionsOutstanding++;
      reader.command(encodeCommand(["TIME"]), TAG_POSITION, unpositioned);
    }
    if (this.#positionsOutstanding > 0 || this.#topics.size === 0) return;
    const states = [...this.#topics.values()];
    const args: (string | number | Uint8Array)[] = [
      "XREAD",
      "COUNT",
      this.#readCount,
      "BLOCK",
      this.#block,
      "STREAMS",
    ];
    for (const s of states) args.push(s.key);
    for (const s of states) args.push(s.lastId.subarray(0, s.lastIdLength));
    reader.command(encodeCommand(args), TAG_XREAD);
    this.#xreadOutstanding = true;
    this.#restartRead = false;
    this.#unblockSent = false;
  }

  #setLastId(state: TopicState, buf: Uint8Array, start: number, length: number): void {
    const id = state.lastId;
    const n = Math.min(length, id.length);
    for (let i = 0; i < n; i++) id[i] = buf[start + i];
    state.lastIdLength = n;
  }

  #onPosition(c: RespCursor, states: TopicState[]): void {
    this.#positionsOutstanding--;
    const now = this.#loop.now();
    let serverMs = 0;
    if (c.next() === 0x2a && c.length === 2) {
      c.next();
      const seconds = Number(c.text());
      c.next();
      serverMs = seconds * 1000 + Math.floor(Number(c.text()) / 1000);
    }
    for (const state of states) {
      if (!state.active || this.#topics.get(state.topic) !== state) continue;
      state.positionPending = false;
      // One millisecond of margin: an entry of the subscription's own millisecond is read.
      const since = Math.floor(serverMs - (now - state.subscribedAt)) - 1;
      const id = utf8.encode(since > 0 ? `${since}-0` : "0-0");
      this.#setLastId(state, id, 0, id.length);
      state.positioned = true;
    }
    this.#pump();
  }

  #onXread(c: RespCursor): void {
    this.#xreadOutstanding = false;
    const type = c.next();
    if (type === 0x2d) {
      const error = new RedisBackplaneError("REPLY_ERROR", `Redis refused XREAD: ${c.text()}`);
      this.#report(error);
      // Wait before trying again: an error that repeats must not spin.
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = null;
        this.#pump();
      }, 1000);
      return;
    }
    if ((type === 0x2a || type === 0x25) && c.length > 0) {
      const streams = c.length;
      const buf = c.buf;
      for (let s = 0; s < streams; s++) {
        if (type === 0x2a) c.next(); // [key, entries] (RESP2)
        c.next();
        const state = this.#table.find(buf, c.start, c.length);
        c.next(); // entries
        const entries = c.length;
        for (let e = 0; e < entries; e++) {
          c.next(); // [id, fields]
          c.next();
          const live = state !== undefined && state.active;
          if (live) {
            this.#setLastId(state, buf, c.start, c.length);
            state.readAny = true;
          }
          c.next(); // fields
          const fields = c.length;
          for (let f = 0; f + 1 < fields; f += 2) {
            c.next();
            const isPayload = c.equals(FIELD);
            c.next();
            if (isPayload && live && state.active) this.#receive(state, buf, c.start, c.length);
            else c.skipElements();
          }
        }
      }
    }
    this.#pump();
  }

  #checkWindow(c: RespCursor, state: TopicState): void {
    if (!state.active || state.lastIdLength === 0) return;
    const lastId = new TextDecoder().decode(state.lastId.subarray(0, state.lastIdLength));
    const reply = decodeReply(c.buf, c.pos, c.end);
    let lost = false;
    if (reply instanceof RespError) {
      // No such key: the stream is gone (Redis restarted without persistence, or it was
      // deleted) with whatever it held past our position. Only a stream we had read from
      // is known to have existed; losses on one we never saw are left to the stamps.
      lost = state.readAny;
    } else if (Array.isArray(reply)) {
      for (let i = 0; i + 1 < reply.length; i += 2) {
        if (reply[i] === "max-deleted-entry-id" && typeof reply[i + 1] === "string") {
          lost = idAfter(reply[i + 1] as string, lastId);
        }
      }
    }
    if (lost) {
      this.#gap({
        topic: state.topic,
        kind: "window",
        origin: "",
        epoch: 0,
        expected: 0,
        received: 0,
      });
    }
  }
}

/**
 * The {@link BackplaneFactory} of a Redis backplane: give it to the engine, which creates
 * one backplane per loop (per worker).
 *
 * @example
 * ```ts
 * import { redisBackplane } from "./redis_backplane.ts";
 * const factory = redisBackplane({ url: "redis://127.0.0.1:6379", mode: "streams" });
 * console.log(typeof factory); // "function"
 * ```
 */
export function redisBackplane(options: RedisBackplaneOptions = {}): BackplaneFactory {
  parseRedisUrl(options.url ?? "redis://127.0.0.1:6379");
  return (loop: IoLoop, handlers: BackplaneHandlers): Backplane =>
    new RedisBackplane(loop, handlers, options);
}

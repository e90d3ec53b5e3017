/**
 * One connection to Redis on the project's own non-blocking sockets, watched by the
 * engine's poller through an {@link IoLoop}: it connects (resolving the host on a worker
 * thread), authenticates and selects the database, pipelines commands from one output
 * buffer (flushed once per turn, with write backpressure), parses replies incrementally
 * from the loop's shared read buffer (a partial reply is copied into a buffer of its own,
 * bounded), checks that the server still answers, and reconnects with exponential backoff
 * and jitter when anything goes wrong, until closed.
 *
 * Two reply disciplines:
 * - tracked: each command is committed with a tag; replies are matched to commands in
 *   order and handed to the owner with their tag. With `retain`, a command's bytes stay
 *   in the buffer until its reply has come, and are sent again after a reconnect (the
 *   server may or may not have run it: the caller must tolerate a repeat);
 * - untracked (a subscriber): replies are handed over as they come, with tag -1, and
 *   bytes are dropped once written; the owner queues its commands again when reconnected.
 *
 * @module
 */

import type { IoLoop, PollTarget } from "../../core/io_loop.ts";
import {
  addressOf,
  IO_FAILED,
  lastIoError,
  recvInto,
  sendFromAddress,
  WOULD_BLOCK,
} from "../../net/io.ts";
import { resolveHost } from "../../net/resolve.ts";
import { closeFd, connectTcp, finishConnect } from "../../net/tcp.ts";
import { Interest, Ready } from "../../poller/poller.ts";
import { RespCursor } from "../../protocol/resp/cursor.ts";
import { encodeCommand } from "../../protocol/resp/encoder.ts";
import { RespProtocolError } from "../../protocol/resp/errors.ts";
import { RespScanner } from "../../protocol/resp/scanner.ts";
import { RedisBackplaneError } from "./errors.ts";
import type { RedisEndpoint } from "./url.ts";

/** Tag of the connection's own PING: its reply is not handed to the owner. */
const TAG_PING = -2;
/** Reads per readiness before letting other descriptors have their turn. */
const READS_PER_WAKE = 4;
const INITIAL_OUT = 64 * 1024;
const INITIAL_IN = 16 * 1024;
const PING = encodeCommand(["PING"]);
const LOADING = new TextEncoder().encode("-LOADING ");

/** True when the error reply at `start` is Redis's LOADING refusal. */
function isLoading(buf: Uint8Array, start: number): boolean {
  for (let i = 0; i < LOADING.length; i++) if (buf[start + i] !== LOADING[i]) return false;
  return true;
}

/** How a {@link RedisConnection} behaves. */
export interface ConnectionConfig {
  /** Where to connect and how to authenticate. */
  endpoint: RedisEndpoint;
  /** CLIENT SETNAME (visible in CLIENT LIST; lets an operator find and kill it). */
  name: string;
  /** Replies are matched to tagged commands (see the module). */
  tracked: boolean;
  /** Tracked only: unanswered commands are sent again after a reconnect. */
  retain: boolean;
  /** Most bytes of commands queued and unanswered (commands past it are refused). */
  bufferLimit: number;
  /** Largest reply accepted, in bytes (a larger one fails the connection). */
  maxReplyBytes: number;
  /** Deadline of the TCP connection plus the handshake, ms. */
  connectTimeout: number;
  /** First reconnection delay, ms; doubles per failed attempt. */
  backoffMin: number;
  /** Longest reconnection delay, ms. */
  backoffMax: number;
  /** A PING is sent after this long without a reply (ms; 0: never). */
  healthInterval: number;
  /** The connection is declared dead after this long without an answer to it, ms. */
  healthTimeout: number;
}

/** What a {@link RedisConnection} tells its owner. */
export interface ConnectionOwner {
  /**
   * The TCP connection is up and the handshake queued: queue the commands that set the
   * connection up (subscriptions). They are pipelined behind the handshake.
   */
  prepare(): void;
  /** The handshake succeeded: the connection is ready. */
  ready(): void;
  /** A reply. The cursor is at its start; `tag` is the command's (-1 when untracked). */
  reply(cursor: RespCursor, tag: number, context: unknown): void;
  /** The connection failed (or could not be made); another attempt follows after a delay. */
  down(error: RedisBackplaneError): void;
}

/** What a {@link Socket} reports to the connection that made it. */
interface SocketEvents {
  ready(socket: Socket, ready: number): void;
  timer(socket: Socket, now: number): void;
  nextTimer(): number;
  loopClosed(socket: Socket): void;
}

/** A socket of one connection attempt: the poller's target. */
class Socket implements PollTarget {
  readonly fd: number;
  readonly #events: SocketEvents;

  constructor(events: SocketEvents, fd: number) {
    this.#events = events;
    this.fd = fd;
  }

  onReady(ready: number): void {
    this.#events.ready(this, ready);
  }

  onTimer(now: number): void {
    this.#events.timer(this, now);
  }

  nextTimer(): number {
    return this.#events.nextTimer();
  }

  close(): void {
    this.#events.loopClosed(this);
  }
}

const enum State {
  IDLE,
  CONNECTING,
  HANDSHAKE,
  READY,
  BACKOFF,
  CLOSED,
}

/**
 * A self-healing connection to one Redis server.
 *
 * @example Queue a command and read its reply (with a loop that implements IoLoop)
 * ```ts
 * import { RedisConnection } from "./connection.ts";
 * import { parseRedisUrl } from "./url.ts";
 * import { encodeCommand } from "../../protocol/resp/encoder.ts";
 * import type { IoLoop } from "../../core/io_loop.ts";
 *
 * declare const loop: IoLoop;
 * const conn = new RedisConnection(loop, {
 *   endpoint: parseRedisUrl("redis://127.0.0.1:6379"), name: "demo", tracked: true,
 *   retain: false, bufferLimit: 1 << 20, maxReplyBytes: 1 << 20, connectTimeout: 5000,
 *   backoffMin: 100, backoffMax: 5000, healthInterval: 5000, healthTimeout: 10000,
 * }, {
 *   prepare() {},
 *   ready() { conn.command(encodeCommand(["INCR", "hits"]), 1); },
 *   reply(cursor, tag) { cursor.next(); console.log(tag, cursor.integer); },
 *   down(error) { console.warn(error.message); },
 * });
 * conn.start();
 * ```
 */
export class RedisConnection {
  readonly #loop: IoLoop;
  readonly #config: ConnectionConfig;
  readonly #owner: ConnectionOwner;
  readonly #socketEvents: SocketEvents = {
    ready: (socket, ready) => this.#onReady(socket, ready),
    timer: (socket, now) => this.#onTimer(socket, now),
    nextTimer: () => this.#nextTimer(),
    loopClosed: (socket) => this.#onLoopClosed(socket),
  };
  #state = State.IDLE;
  #socket: Socket | null = null;
  /** Bumped whenever the socket goes: a callback that outlives its socket stops. */
  #generation = 0;
  #attempt = 0;
  #everReady = false;
  #backoffTimer: ReturnType<typeof setTimeout> | null = null;
  #addresses: string[] = [];
  #addressIndex = 0;
  #connectDeadline = 0;
  #interest = 0;

  // Output: [0, ackHead) free, [ackHead, sent) written and unanswered (tracked and
  // retained), [sent, end) not written yet.
  #out: Uint8Array = new Uint8Array(new ArrayBuffer(INITIAL_OUT));
  #outAddress = 0;
  #ackHead = 0;
  #sent = 0;
  #end = 0;
  #flushQueued = false;
  /** Bytes of the handshake at the head of the unanswered region. */
  #handshakeBytes = 0;
  #handshakePending = 0;

  // Commands awaiting replies (tracked): a ring of tags, lengths and contexts.
  #tags = new Int32Array(64);
  #lengths = new Int32Array(64);
  #contexts: unknown[] = new Array(64);
  #qHead = 0;
  #qCount = 0;

  // Input: a partial reply copied out of the shared read buffer.
  #in: Uint8Array = new Uint8Array(INITIAL_IN);
  #inLength = 0;
  readonly #scanner: RespScanner;
  readonly #cursor = new RespCursor();

  #lastReadAt = 0;
  #pingSentAt = -1;

  /**
   * Creates a connection; {@link RedisConnection.start} opens it.
   *
   * @param loop The loop whose poller watches it.
   * @param config See {@link ConnectionConfig}.
   * @param owner Receives replies and state changes.
   */
  constructor(loop: IoLoop, config: ConnectionConfig, owner: ConnectionOwner) {
    this.#loop = loop;
    this.#config = config;
    this.#owner = owner;
    this.#scanner = new RespScanner({ maxBulkLength: config.maxReplyBytes });
    this.#outAddress = addressOf(this.#out);
  }

  /** True once the handshake succeeded, until the connection is lost. */
  get ready(): boolean {
    return this.#state === State.READY;
  }

  /** True once the TCP connection is up (handshake sent), until it is lost. */
  get connected(): boolean {
    return this.#state === State.HANDSHAKE || this.#state === State.READY;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  /** Bytes of commands queued or written and unanswered. */
  get pendingBytes(): number {
    return this.#end - this.#ackHead;
  }

  /** Commands waiting for their reply (tracked). */
  get pendingReplies(): number {
    return this.#qCount;
  }

  /** True when `size` more bytes of commands fit under the buffer limit. */
  fits(size: number): boolean {
    return this.#end - this.#ackHead + size <= this.#config.bufferLimit;
  }

  /** Opens the connection (idempotent). */
  start(): void {
    if (this.#state !== State.IDLE) return;
    this.#connect();
  }

  /**
   * Makes room for a command of `size` bytes and returns the buffer and the offset to
   * write it at; {@link RedisConnection.commit} then queues it. Returns -1 when the buffer
   * limit would be passed, unless `force` (commands that must go: subscriptions).
   */
  reserve(size: number, force = false): number {
    if (!force && !this.fits(size)) return -1;
    if (this.#end + size > this.#out.length) this.#makeRoom(size);
    return this.#end;
  }

  /** The output buffer, valid until the next {@link RedisConnection.reserve}. */
  get buffer(): Uint8Array {
    return this.#out;
  }

  /**
   * Queues the `size` bytes written at the offset {@link RedisConnection.reserve} returned,
   * with the tag (and context) its reply will be handed over with.
   */
  commit(size: number, tag: number, context?: unknown): void {
    this.#end += size;
    if (this.#config.tracked) this.#push(tag, size, context);
    this.#scheduleFlush();
  }

  /** Queues a whole encoded command (refused only past the limit, unless `force`). */
  command(bytes: Uint8Array, tag: number, context?: unknown, force = true): boolean {
    const at = this.reserve(bytes.length, force);
    if (at < 0) return false;
    this.#out.set(bytes, at);
    this.commit(bytes.length, tag, context);
    return true;
  }

  /** Closes the socket at once and for good; queued commands are discarded. */
  close(): void {
    if (this.#state === State.CLOSED) return;
    this.#state = State.CLOSED;
    if (this.#backoffTimer !== null) clearTimeout(this.#backoffTimer);
    this.#backoffTimer = null;
    this.#dropSocket();
    this.#ackHead = this.#sent = this.#end = 0;
    this.#qHead = this.#qCount = 0;
    this.#contexts.fill(undefined);
  }

  // ------------------------------------------------------------------ connecting

  #connect(): void {
    this.#backoffTimer = null;
    if (this.#state === State.CLOSED) return;
    this.#state = State.CONNECTING;
    const generation = ++this.#generation;
    if (this.#addresses.length === 0) {
      resolveHost(this.#config.endpoint.host).then(
        (list) => {
          if (generation !== this.#generation || this.#state === State.CLOSED) return;
          this.#addresses = list.map((a) => a.address);
          this.#open();
        },
        (err) => {
          if (generation !== this.#generation) return;
          this.#fail(
            new RedisBackplaneError("CONNECT_FAILED", (err as Error).message, { cause: err }),
          );
        },
      );
      return;
    }
    this.#open();
  }

  #open(): void {
    const { port } = this.#config.endpoint;
    const address = this.#addresses[this.#addressIndex++ % this.#addresses.length];
    let fd: number;
    let inProgress: boolean;
    try {
      ({ fd, inProgress } = connectTcp(address, port));
    } catch (err) {
      this.#fail(
        new RedisBackplaneError("CONNECT_FAILED", `${address}:${port}: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    const socket = new Socket(this.#socketEvents, fd);
    this.#socket = socket;
    this.#connectDeadline = this.#loop.now() + this.#config.connectTimeout;
    this.#interest = Interest.WRITABLE;
    try {
      this.#loop.addTarget(socket, this.#interest);
    } catch (err) {
      this.#socket = null;
      closeFd(fd);
      this.#fail(new RedisBackplaneError("CONNECT_FAILED", (err as Error).message, { cause: err }));
      return;
    }
    if (!inProgress) this.#connected();
  }

  #connected(): void {
    try {
      finishConnect(this.#socket!.fd);
    } catch (err) {
      const { port } = this.#config.endpoint;
      const address = this.#addresses[(this.#addressIndex - 1) % this.#addresses.length];
      this.#fail(
        new RedisBackplaneError("CONNECT_FAILED", `${address}:${port}: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    this.#state = State.HANDSHAKE;
    this.#lastReadAt = this.#loop.now();
    this.#pingSentAt = -1;
    this.#writeHandshake();
    const generation = this.#generation;
    this.#owner.prepare();
    if (generation !== this.#generation) return;
    this.#setInterest(Interest.READABLE);
    this.#flush();
  }

  /** Puts AUTH, SELECT and CLIENT SETNAME in front of whatever is queued. */
  #writeHandshake(): void {
    const { endpoint, name } = this.#config;
    const parts: Uint8Array[] = [];
    if (endpoint.password !== null) {
      parts.push(
        encodeCommand(
          endpoint.username !== null
            ? ["AUTH", endpoint.username, endpoint.password]
            : ["AUTH", endpoint.password],
        ),
      );
    }
    if (endpoint.db !== 0) parts.push(encodeCommand(["SELECT", endpoint.db]));
    parts.push(encodeCommand(["CLIENT", "SETNAME", name]));
    let size = 0;
    for (const p of parts) size += p.length;
    // Everything queued is unwritten now (a retained region was rewound by #fail).
    if (this.#ackHead < size) {
      if (this.#end + size > this.#out.length) this.#makeRoom(size);
      this.#out.copyWithin(this.#ackHead + size, this.#ackHead, this.#end);
      this.#end += size;
    } else {
      this.#ackHead -= size;
    }
    let at = this.#ackHead;
    for (const p of parts) {
      this.#out.set(p, at);
      at += p.length;
    }
    this.#sent = this.#ackHead;
    this.#handshakeBytes = size;
    this.#handshakePending = parts.length;
  }

  #fail(error: RedisBackplaneError): void {
    if (this.#state === State.CLOSED) return;
    this.#dropSocket();
    this.#scanner.reset();
    this.#inLength = 0;
    this.#pingSentAt = -1;
    if (this.#handshakeBytes > 0) {
      // The handshake of the lost connection is written again in front of the next one.
      this.#ackHead += this.#handshakeBytes;
      this.#handshakeBytes = 0;
      this.#handshakePending = 0;
    }
    if (this.#config.retain) {
      this.#dropQueued(TAG_PING);
      this.#sent = this.#ackHead;
    } else {
      this.#ackHead = this.#sent = this.#end = 0;
      this.#qHead = this.#qCount = 0;
      this.#contexts.fill(undefined);
    }
    this.#state = State.BACKOFF;
    const d = Math.min(
      this.#config.backoffMax,
      this.#config.backoffMin * 2 ** Math.min(this.#attempt, 30),
    );
    this.#attempt++;
    // Equal jitter: never less than half the step, so a crowd of nodes spreads out without
    // any of them hammering a server that just came back.
    const delay = d / 2 + Math.random() * (d / 2);
    this.#backoffTimer = setTimeout(() => this.#connect(), delay);
    this.#owner.down(error);
  }

  #dropSocket(): void {
    this.#generation++;
    const socket = this.#socket;
    this.#socket = null;
    this.#flushQueued = false;
    if (socket === null) return;
    this.#loop.removeTarget(socket);
    closeFd(socket.fd);
  }

  /** Removes the queued commands of one tag (PINGs of a lost connection are not resent). */
  #dropQueued(tag: number): void {
    if (this.#qCount === 0) return;
    const cap = this.#tags.length;
    let found = false;
    for (let i = 0; i < this.#qCount; i++) {
      if (this.#tags[(this.#qHead + i) % cap] === tag) found = true;
    }
    if (!found) return;
    // Rebuild the unanswered region without them (rare: only after a loss).
    const keepTags: number[] = [];
    const keepLengths: number[] = [];
    const keepContexts: unknown[] = [];
    const bytes: Uint8Array[] = [];
    let at = this.#ackHead;
    for (let i = 0; i < this.#qCount; i++) {
      const k = (this.#qHead + i) % cap;
      const len = this.#lengths[k];
      if (this.#tags[k] !== tag) {
        keepTags.push(this.#tags[k]);
        keepLengths.push(len);
        keepContexts.push(this.#contexts[k]);
        bytes.push(this.#out.slice(at, at + len));
      }
      at += len;
    }
    const rest = this.#out.slice(at, this.#end);
    this.#qHead = this.#qCount = 0;
    this.#contexts.fill(undefined);
    let w = this.#ackHead;
    for (let i = 0; i < bytes.length; i++) {
      this.#out.set(bytes[i], w);
      w += bytes[i].length;
      this.#push(keepTags[i], keepLengths[i], keepContexts[i]);
    }
    this.#out.set(rest, w);
    this.#end = w + rest.length;
  }

  // ------------------------------------------------------------------ poller callbacks

  #onReady(socket: Socket, ready: number): void {
    if (socket !== this.#socket) return;
    const generation = this.#generation;
    if (this.#state === State.CONNECTING) {
      if (ready & (Ready.WRITABLE | Ready.ERROR | Ready.HANGUP)) this.#connected();
      return;
    }
    if (ready & Ready.WRITABLE) this.#flush();
    if (generation !== this.#generation) return;
    if (ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR)) this.#read();
  }

  #nextTimer(): number {
    if (this.#state === State.CONNECTING || this.#state === State.HANDSHAKE) {
      return this.#connectDeadline;
    }
    const { healthInterval, healthTimeout } = this.#config;
    if (this.#state !== State.READY || healthInterval <= 0) return Infinity;
    if (this.#pingSentAt >= 0) return Math.max(this.#pingSentAt, this.#lastReadAt) + healthTimeout;
    return this.#lastReadAt + healthInterval;
  }

  #onTimer(socket: Socket, now: number): void {
    if (socket !== this.#socket) return;
    if (this.#state === State.CONNECTING || this.#state === State.HANDSHAKE) {
      if (now >= this.#connectDeadline) {
        this.#fail(
          new RedisBackplaneError(
            "CONNECT_TIMEOUT",
            `no connection to ${this.#config.endpoint.host}:${this.#config.endpoint.port} within ${this.#config.connectTimeout} ms`,
          ),
        );
      }
      return;
    }
    const { healthInterval, healthTimeout } = this.#config;
    if (this.#state !== State.READY || healthInterval <= 0) return;
    if (this.#pingSentAt >= 0) {
      if (now - Math.max(this.#pingSentAt, this.#lastReadAt) >= healthTimeout) {
        this.#fail(
          new RedisBackplaneError("HEALTH_TIMEOUT", `Redis did not answer for ${healthTimeout} ms`),
        );
      }
    } else if (now - this.#lastReadAt >= healthInterval) {
      this.#pingSentAt = now;
      this.command(PING, TAG_PING);
    }
  }

  /** The loop shut down: it unregistered the socket already. */
  #onLoopClosed(socket: Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = null;
    closeFd(socket.fd);
    this.close();
  }

  #setInterest(interest: number): void {
    if (interest === this.#interest || this.#socket === null) return;
    this.#interest = interest;
    this.#loop.modifyTarget(this.#socket, interest);
  }

  // ------------------------------------------------------------------ writing

  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  #scheduleFlush(): void {
    if (this.#flushQueued || this.#socket === null || this.#state === State.CONNECTING) return;
    this.#flushQueued = true;
    // A microtask runs when the current loop tick (or application callback) is over:
    // every command queued in it goes out in one send.
    queueMicrotask(this.#flushTask);
  }

  #flush(): void {
    const socket = this.#socket;
    if (socket === null || this.#state === State.CONNECTING) return;
    while (this.#sent < this.#end) {
      const n = sendFromAddress(socket.fd, this.#outAddress + this.#sent, this.#end - this.#sent);
      if (n > 0) {
        this.#sent += n;
        continue;
      }
      if (n === WOULD_BLOCK) {
        this.#setInterest(Interest.READABLE | Interest.WRITABLE);
        return;
      }
      if (n === IO_FAILED) {
        this.#fail(
          new RedisBackplaneError("CONNECTION_LOST", `send failed (errno ${lastIoError()})`),
        );
        return;
      }
    }
    this.#setInterest(Interest.READABLE);
    if (!this.#config.tracked && this.#handshakePending === 0) this.#ackHead = this.#sent;
    if (this.#ackHead === this.#end) this.#ackHead = this.#sent = this.#end = 0;
  }

  /** Compacts (drops answered bytes) and grows the output buffer to fit `size` more. */
  #makeRoom(size: number): void {
    const live = this.#end - this.#ackHead;
    let out = this.#out;
    if (live + size > out.length) {
      let cap = out.length;
      while (cap < live + size) cap *= 2;
      out = new Uint8Array(new ArrayBuffer(cap));
      out.set(this.#out.subarray(this.#ackHead, this.#end));
      this.#out = out;
      this.#outAddress = addressOf(out);
    } else {
      out.copyWithin(0, this.#ackHead, this.#end);
    }
    this.#sent -= this.#ackHead;
    this.#end = live;
    this.#ackHead = 0;
  }

  #push(tag: number, length: number, context: unknown): void {
    if (this.#qCount === this.#tags.length) {
      const cap = this.#tags.length * 2;
      const tags = new Int32Array(cap);
      const lengths = new Int32Array(cap);
      const contexts: unknown[] = new Array(cap);
      for (let i = 0; i < this.#qCount; i++) {
        const k = (this.#qHead + i) % this.#tags.length;
        tags[i] = this.#tags[k];
        lengths[i] = this.#lengths[k];
        contexts[i] = this.#contexts[k];
      }
      this.#tags = tags;
      this.#lengths = lengths;
      this.#contexts = contexts;
      this.#qHead = 0;
    }
    const k = (this.#qHead + this.#qCount++) % this.#tags.length;
    this.#tags[k] = tag;
    this.#lengths[k] = length;
    this.#contexts[k] = context;
  }

  // ------------------------------------------------------------------ reading

  #read(): void {
    const socket = this.#socket!;
    const loop = this.#loop;
    const generation = this.#generation;
    for (let i = 0; i < READS_PER_WAKE; i++) {
      const buf = loop.readBuffer;
      const n = recvInto(socket.fd, buf, loop.readLength);
      if (n > 0) {
        this.#lastReadAt = loop.now();
        this.#consume(buf, n);
        if (generation !== this.#generation) return;
        if (n < buf.length) return;
        continue;
      }
      if (n === WOULD_BLOCK) return;
      const why = n === 0 ? "closed by the server" : `reset (errno ${lastIoError()})`;
      this.#fail(new RedisBackplaneError("CONNECTION_LOST", `connection to Redis ${why}`));
      return;
    }
  }

  /** Parses `chunk[0, n)`: complete replies are handled in place, the rest copied. */
  #consume(chunk: Uint8Array, n: number): void {
    const generation = this.#generation;
    try {
      if (this.#inLength === 0) {
        const start = this.#dispatchReplies(chunk, n, generation);
        if (start >= 0 && start < n) this.#keep(chunk, start, n);
        return;
      }
      this.#keep(chunk, 0, n);
      const buf = this.#in;
      const length = this.#inLength;
      const start = this.#dispatchReplies(buf, length, generation);
      if (start > 0) {
        buf.copyWithin(0, start, length);
        this.#inLength = length - start;
      }
    } catch (err) {
      if (generation !== this.#generation) throw err;
      if (err instanceof RespProtocolError) {
        this.#fail(new RedisBackplaneError("PROTOCOL", err.message, { cause: err }));
        return;
      }
      throw err;
    }
  }

  /**
   * Dispatches the whole replies at the start of `buf[0, end)`.
   *
   * @returns where the unfinished reply starts (`end` when none), or -1 when a reply's
   * handling replaced this connection's generation (what is left belongs to no one).
   */
  #dispatchReplies(buf: Uint8Array, end: number, generation: number): number {
    let start = 0;
    while (start < end) {
      const next = this.#scanner.scan(buf, start, end);
      if (next < 0) break;
      this.#dispatch(buf, start, next);
      if (generation !== this.#generation) return -1;
      start = next;
    }
    return start;
  }

  /** Appends `src[from, to)` to the partial-reply buffer, within the reply size limit. */
  #keep(src: Uint8Array, from: number, to: number): void {
    const need = this.#inLength + to - from;
    if (need > this.#config.maxReplyBytes + 64 * 1024) {
      throw new RespProtocolError(
        "RESP_LIMIT",
        `reply larger than maxReplyBytes (${this.#config.maxReplyBytes})`,
      );
    }
    if (need > this.#in.length) {
      let cap = this.#in.length;
      while (cap < need) cap *= 2;
      const grown = new Uint8Array(cap);
      grown.set(this.#in.subarray(0, this.#inLength));
      this.#in = grown;
    }
    this.#in.set(src.subarray(from, to), this.#inLength);
    this.#inLength = need;
  }

  #dispatch(buf: Uint8Array, start: number, end: number): void {
    const cursor = this.#cursor;
    cursor.reset(buf, start, end);
    if (buf[start] === 0x2d && isLoading(buf, start)) {
      // A server that has just restarted accepts connections before its data is loaded
      // and refuses most commands meanwhile: the command was not run, so try again later
      // (a retained command is sent again then).
      this.#fail(new RedisBackplaneError("SERVER_LOADING", "Redis is loading its dataset"));
      return;
    }
    if (this.#handshakePending > 0) {
      if (buf[start] === 0x2d) {
        cursor.next();
        this.#fail(
          new RedisBackplaneError("AUTH_FAILED", `Redis refused the handshake: ${cursor.text()}`),
        );
        return;
      }
      if (--this.#handshakePending > 0) return;
      if (this.#config.tracked) this.#ackHead += this.#handshakeBytes;
      this.#handshakeBytes = 0;
      this.#state = State.READY;
      this.#attempt = 0;
      this.#everReady = true;
      this.#owner.ready();
      return;
    }
    if (!this.#config.tracked) {
      this.#pingSentAt = -1;
      this.#owner.reply(cursor, -1, undefined);
      return;
    }
    if (this.#qCount === 0) {
      throw new RespProtocolError("RESP_SYNTAX", "a reply came with no command waiting for it");
    }
    const cap = this.#tags.length;
    const k = this.#qHead;
    const tag = this.#tags[k];
    const context = this.#contexts[k];
    this.#contexts[k] = undefined;
    this.#ackHead += this.#lengths[k];
    this.#qHead = (k + 1) % cap;
    this.#qCount--;
    if (this.#ackHead > this.#sent) this.#sent = this.#ackHead;
    if (tag === TAG_PING) {
      this.#pingSentAt = -1;
      return;
    }
    this.#owner.reply(cursor, tag, context);
  }

  /** True once a handshake has succeeded at least once. */
  get everReady(): boolean {
    return this.#everReady;
  }
}

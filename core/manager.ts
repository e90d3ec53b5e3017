/**
 * The WebSocketManager: ws4py's `manager.py` (add, remove, broadcast, close_all, stop,
 * join) on a readiness poller, as a task on the Deno event loop. It owns the descriptor
 * table, lends frame parsers, runs the loop, applies backpressure and delivers broadcasts
 * and topics; the connection, the outbox, the timers and the topic tree are their own
 * modules, and talk to it through the host interface it gives each connection.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { BasePoller } from "../poller/base.ts";
import { IdleSpin, SPIN_MS } from "./idle_spin.ts";
import { HEAP_TRIM_MS, HeapTrimmer } from "./heap_trim.ts";
import { libc } from "../ffi/libc.ts";
import { createPoller } from "../poller/default.ts";
import { Events, Interest, type Poller, type PollerKind } from "../poller/poller.ts";
import { encodeCloseFrame, encodeControlFrame, encodeFrame } from "../protocol/frame/encoder.ts";
import {
  OPCODE_BINARY,
  OPCODE_PING,
  type OPCODE_PONG,
  OPCODE_TEXT,
} from "../protocol/frame/opcodes.ts";
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  FrameParser,
  type MessageBudget,
} from "../protocol/frame/parser.ts";
import { CLOSED, CLOSING, type Connection, OPEN } from "./connection.ts";
import { type ConnectionHost, SendStatus } from "./host.ts";
import type { IoLoop, PollTarget } from "./io_loop.ts";
import { MacrotaskQueue } from "./macrotask.ts";
import { type FramePool, framePool } from "./frame_pool.ts";
import { bufferedBytes, Outbox } from "./outbox.ts";
import { createStats, type ManagerStats, recordTick } from "./stats.ts";
import { Timers } from "./timers.ts";
import { TopicTree } from "./topics.ts";
import type { Backplane, BackplaneFactory, BackplaneGap } from "./backplane.ts";
import {
  connectionOf,
  reportToWebSocket,
  type WebSocket,
  type WebSocketHandlers,
  type WebSocketHost,
} from "./websocket.ts";

/** What happens to a connection whose unsent bytes pass the backpressure limit. */
export type BackpressurePolicy = "close" | "drop" | "buffer";

/** Options of {@link WebSocketManager.broadcast} and {@link WebSocketManager.publish}. */
export interface DeliverOptions<T = unknown> {
  /** For a string: send its UTF-8 bytes as a binary message. For bytes: default true. */
  binary?: boolean;
  /** A connection that does not get it (typically the sender). */
  except?: WebSocket<T> | null;
  /** Compress for connections with permessage-deflate (default true). */
  compress?: boolean;
}

/** Options of a {@link WebSocketManager}. */
export interface ManagerOptions<T = unknown> {
  /** Poller instance or mechanism; default: the best for this system. */
  poller?: Poller | PollerKind;
  /** Largest message accepted (bytes); larger ones close the connection with 1009. Default 64 MiB. */
  maxMessageSize?: number;
  /**
   * Bytes all connections together may hold in messages still arriving; a connection whose
   * message would pass it is closed with 1013 (try again later). Default: 256 MiB or twice
   * `maxMessageSize`, whichever is larger.
   */
  maxIncompleteMessageBytes?: number;
  /**
   * What binary messages handlers get. `"owned"` (default): a fresh `Uint8Array` per message,
   * theirs to keep. `"borrowed"`: a view of a buffer the manager reuses as soon as the
   * `message` handler (and the `message` listeners) return; read it, or pass it to `send`,
   * `publish` or `broadcast` (they copy), before returning, and copy it (`data.slice()`) to
   * keep it; `for await` still gets copies. Saves an allocation and a copy per message and
   * the garbage a stream of large messages leaves until V8 collects it (a relay of 512 MiB
   * in 64 KiB messages: see "Memory under load" in the README).
   */
  messageBuffers?: "owned" | "borrowed";
  /**
   * Give memory the C heap freed back to the system at most this often (ms) while the loop
   * works, and this long after a burst; 0 disables. Default 1,000. Only where the C library
   * keeps freed memory (glibc's `malloc_trim`; elsewhere nothing to do). See
   * `core/heap_trim.ts`.
   */
  heapTrimInterval?: number;
  /** Send a ping to connections quiet for this long (ms); 0 disables. Default 30,000. */
  pingInterval?: number;
  /** Terminate connections that sent nothing (not even a pong) for this long (ms); 0 disables. Default 60,000. */
  idleTimeout?: number;
  /** How long a closing handshake may take before the connection is terminated (ms). Default 5,000. */
  closeTimeout?: number;
  /** Unsent bytes per connection past which `backpressurePolicy` applies. Default 16 MiB. */
  backpressureLimit?: number;
  /**
   * `"close"` (default): close the slow consumer with 1008, or terminate it when it cannot
   * even take the close frame. `"drop"`: keep the connection, drop the message, count it
   * in `ws.droppedMessages`; `send()` returns `SendStatus.DROPPED` (0). `"buffer"`: no limit.
   */
  backpressurePolicy?: BackpressurePolicy;
  /**
   * Where topics meet other managers (other workers, processes, hosts), e.g.
   * `redisBackplane({ url })`; created when the manager starts, closed when it stops.
   * Default: none, topics stay in this manager.
   */
  backplane?: BackplaneFactory;
  /** Messages of a topic lost on the backplane (pub/sub is at-most-once). */
  onBackplaneGap?: (gap: BackplaneGap) => void;
  /** The backplane failed (e.g. its broker is unreachable); it keeps retrying. */
  onBackplaneError?: (error: Error) => void;
  /**
   * `ws.publish()` also delivers to the publishing connection when it is subscribed.
   * Default false (as Bun and uWS).
   */
  publishToSelf?: boolean;
  /** Handler functions; see {@link WebSocketHandlers}. */
  handlers?: WebSocketHandlers<T>;
}

/**
 * Thrown for misuse of a manager (`code` `"MANAGER_STOPPED"`, `"NOT_OPEN"`,
 * `"INVALID_OPTION"`).
 *
 * @example
 * ```ts
 * import { ManagerError } from "./manager.ts";
 * console.log(new ManagerError("NOT_OPEN", "closed").code); // "NOT_OPEN"
 * ```
 */
export class ManagerError extends FdwsError {
  /**
   * Creates the error.
   * @param code Stable identifier.
   * @param message Human-readable description.
   */
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "ManagerError";
  }
}

type Conn<T> = Connection<WebSocket<T>>;

/** Poller tokens: WebSocket connections, and everything else (listeners, handshakes). */
const TOKEN_CONN = 0;
const TOKEN_OTHER = 1;
const READ_LEN = 256 * 1024;
/** Busy ticks give the event loop (signals, other I/O) a turn at least this often. */
const YIELD_MS = 4;
/**
 * And a turn on which its timers run at least this often (see MacrotaskQueue.timerTurn): a
 * loop that never parks would otherwise hold `setTimeout` back for as long as it is busy.
 * About 2 ms in 100 while saturated; a loop that parks lets timers run anyway.
 */
const TIMER_YIELD_MS = 100;
const READABLE_READY = 1;
/** Outbox slots: a broadcast's plain and compressed frames, and single sends meanwhile. */
const SLOT_PLAIN = 0;
const SLOT_ZIP = 1;
const SLOT_ONE = 2;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** The host object of a manager: what its connections and poll targets call. */
type Host<T> = ConnectionHost<Conn<T>> & IoLoop;

let hostOf: <T>(m: WebSocketManager<T>) => Host<T>;
let attachTo: <T>(
  m: WebSocketManager<T>,
  conn: Conn<T>,
  initial: Uint8Array | null,
  preface: Uint8Array | null,
) => void;

/**
 * Runs many WebSocket connections on one poller: reads, parses and dispatches what
 * arrives, writes what is sent (corked: one write per connection per loop tick),
 * broadcasts and publishes to topics, enforces backpressure, heartbeats and timeouts.
 *
 * @typeParam T Type of `ws.data` of its connections.
 *
 * @example Broadcast to every connection of a manager that a server feeds
 * ```ts
 * import { serve } from "../server/serve.ts";
 * import { WebSocketManager } from "./manager.ts";
 *
 * const manager = new WebSocketManager({
 *   handlers: { message: (_ws, data) => void manager.broadcast(data) },
 * });
 * const server = serve({ manager, hostname: "127.0.0.1", port: 0 });
 * console.log(manager.running); // true
 * await server.shutdown();
 * ```
 */
export class WebSocketManager<T = unknown> implements WebSocketHost<T> {
  static {
    hostOf = (m) => m.#host;
    attachTo = (m, conn, initial, preface) => m.#attach(conn, initial, preface);
  }

  /** Live counters. */
  readonly stats: ManagerStats = createStats();

  #handlers: WebSocketHandlers<T>;
  readonly #poller: Poller;
  readonly #ownsPoller: boolean;
  readonly #events = new Events(1024);
  readonly #outbox: Outbox<Conn<T>>;
  readonly #conns: Conn<T>[] = [];
  readonly #table: (Conn<T> | PollTarget | undefined)[] = [];
  readonly #topics = new TopicTree<Conn<T>>();
  readonly #timers: Timers<Conn<T>>;
  readonly #heapTrim: HeapTrimmer;
  readonly #targets = new Set<PollTarget>();
  readonly #macrotasks = new MacrotaskQueue();
  readonly #readBuffer = new Uint8Array(new ArrayBuffer(READ_LEN));
  readonly #epoch = performance.now();
  readonly #maxMessageSize: number;
  readonly #budget: MessageBudget;
  readonly #lend: FramePool | null;
  readonly #closeTimeout: number;
  readonly #limit: number;
  readonly #policy: BackpressurePolicy;
  readonly #publishToSelf: boolean;
  readonly #backplaneFactory: BackplaneFactory | null;
  readonly #onGap: ((gap: BackplaneGap) => void) | null;
  readonly #onBackplaneError: ((error: Error) => void) | null;
  #backplane: Backplane | null = null;
  /** stop() was called while the backplane closes (the loop runs until it has). */
  #stopRequested = false;
  readonly #host: Host<T>;
  /** Milliseconds since the manager was created, advanced once per loop tick. */
  #clock = 0;
  /** Parsers idle connections share, per role (see `Connection.parse`). */
  #serverParser: FrameParser;
  #clientParser: FrameParser;
  /** A push with a lent parser is running (a nested one gets a fresh parser). */
  #parsing = false;
  /** Connections to read on the next tick without waiting for readiness. */
  #again: Conn<T>[] = [];
  #running = false;
  #stopping = false;
  #loop: Promise<void> | null = null;
  #inTick = false;
  #flushScheduled = false;
  /** The loop sleeps in a wait whose timeout was computed from the timers of that moment. */
  #parked = false;
  /** Slow consumers found while a broadcast iterates its targets (dropped after it). */
  readonly #slow: Conn<T>[] = [];
  #deferDrops = false;
  readonly #flushTask = (): void => {
    this.#flushScheduled = false;
    if (!this.#inTick) this.#flush();
  };

  /**
   * Creates a stopped manager; `start()` runs it.
   * @param options See {@link ManagerOptions}.
   * @throws {FrameParserOptionsError} for an invalid `maxMessageSize` (nothing is opened).
   */
  constructor(options: ManagerOptions<T> = {}) {
    // Options first: a manager refused for its options must not leave a poller behind.
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    const budget = options.maxIncompleteMessageBytes ??
      Math.max(256 * 1024 * 1024, 2 * this.#maxMessageSize);
    if (!(budget > 0)) {
      throw new ManagerError("INVALID_OPTION", "maxIncompleteMessageBytes must be > 0");
    }
    this.#budget = byteBudget(budget);
    const buffers = options.messageBuffers ?? "owned";
    if (buffers !== "owned" && buffers !== "borrowed") {
      throw new ManagerError(
        "INVALID_OPTION",
        `messageBuffers must be "owned" or "borrowed", got ${buffers}`,
      );
    }
    this.#lend = buffers === "borrowed" ? framePool : null;
    // Validates maxMessageSize (FrameParserOptionsError).
    this.#serverParser = this.#newParser("server");
    this.#clientParser = this.#newParser("client");
    this.#closeTimeout = options.closeTimeout ?? 5_000;
    this.#limit = options.backpressureLimit ?? 16 * 1024 * 1024;
    this.#policy = options.backpressurePolicy ?? "close";
    this.#publishToSelf = options.publishToSelf ?? false;
    const trimEvery = options.heapTrimInterval ?? HEAP_TRIM_MS;
    if (!(trimEvery >= 0 && trimEvery < Infinity)) {
      throw new ManagerError("INVALID_OPTION", "heapTrimInterval must be a finite number >= 0");
    }
    this.#heapTrim = new HeapTrimmer(trimEvery, libc().mallocTrim, this.stats);
    this.#timers = new Timers({
      pingInterval: options.pingInterval ?? 30_000,
      idleTimeout: options.idleTimeout ?? 60_000,
    });
    this.#handlers = options.handlers ?? {};
    this.#backplaneFactory = options.backplane ?? null;
    this.#onGap = options.onBackplaneGap ?? null;
    this.#onBackplaneError = options.onBackplaneError ?? null;
    const p = options.poller;
    this.#poller = p === undefined || typeof p === "string" ? createPoller(p) : p;
    this.#ownsPoller = p === undefined || typeof p === "string";
    this.#outbox = new Outbox<Conn<T>>({
      blocked: (conn) => this.#setWriteInterest(conn, true),
      drained: (conn) => this.#onDrained(conn),
      failed: (conn) => {
        conn.failReason ||= conn.transport.lastErrorMessage || "write failed";
        conn.terminate();
      },
      wrote: (n) => {
        this.stats.bytesOut += n;
      },
    });
    this.#host = this.#makeHost();
  }

  /** The poller the manager waits on. */
  get poller(): Poller {
    return this.#poller;
  }

  /** The handler functions of the connections that have none of their own. */
  get handlers(): WebSocketHandlers<T> {
    return this.#handlers;
  }
  /** Replaces the handler functions; they apply from the next event on. */
  set handlers(handlers: WebSocketHandlers<T>) {
    this.#handlers = handlers;
  }

  /** The backplane while the manager runs with one, else null (see `stats`, `nodeId`). */
  get backplane(): Backplane | null {
    return this.#backplane;
  }

  /** Largest message accepted from a peer (bytes; see {@link ManagerOptions.maxMessageSize}). */
  get maxMessageSize(): number {
    return this.#maxMessageSize;
  }

  /** Number of connections (open or closing). */
  get size(): number {
    return this.#conns.length;
  }

  /** Bytes queued over all connections and not yet written (walks the connections). */
  get bufferedAmount(): number {
    let sum = 0;
    for (const conn of this.#conns) sum += bufferedBytes(conn);
    return sum;
  }

  /** True between `start()` and the end of the loop. */
  get running(): boolean {
    return this.#running;
  }

  /** True when `ws` is one of this manager's connections. */
  has(ws: WebSocket<T>): boolean {
    const conn = connectionOf(ws);
    return conn !== null && conn.host === this.#host && this.#conns[conn.index] === conn;
  }

  /** Closes every connection (1001) and stops: for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#running) await this.closeAll();
    this.stop();
    await this.join();
  }

  /** Iterates over the connections. */
  [Symbol.iterator](): IterableIterator<WebSocket<T>> {
    return this.#conns.map((c) => c.user)[Symbol.iterator]();
  }

  /**
   * Moves a connection from its current manager to this one (ws4py's `add`): queued data
   * is written first on the old one. The connection keeps its state, its unread bytes and
   * its topics.
   *
   * @throws {ManagerError} `NOT_OPEN` for a closed connection, `MANAGER_STOPPED` when this
   * manager is stopping; the poller's error when it cannot watch the descriptor (the
   * connection then stays where it was).
   */
  adopt(ws: WebSocket<T>): void {
    const conn = connectionOf(ws);
    // A connection given up with remove() has no manager but still has its socket.
    if (conn === null || conn.state === CLOSED || conn.fd < 0) {
      throw new ManagerError("NOT_OPEN", "only an open connection can be moved");
    }
    const from = conn.host;
    if (from === this.#host) return;
    if (this.#stopping || this.#stopRequested) {
      throw new ManagerError("MANAGER_STOPPED", "the manager is stopping");
    }
    const interest = conn.blocked ? Interest.READABLE | Interest.WRITABLE : Interest.READABLE;
    // Two managers may share a poller: then the old one must let go of the descriptor first.
    const samePoller = from !== null && (from.owner as WebSocketManager<T>).poller === this.#poller;
    const fd = conn.fd;
    if (from !== null && samePoller) from.leave(conn);
    // Watch the descriptor before anything else changes, so that a poller that refuses it
    // leaves the connection as it was.
    if ((conn.state as number) !== CLOSED) this.#poller.register(fd, TOKEN_CONN, interest);
    if (from !== null && !samePoller) from.leave(conn);
    if ((conn.state as number) === CLOSED) {
      // Writing its queue on the old manager failed (the peer is gone): it closed there,
      // and its closed() hook has run. Nothing is left to adopt.
      this.#poller.unregister(fd);
      return;
    }
    this.#now();
    conn.attach(this.#host);
    // Times on the connection were on the old manager's clock: restart them on this one.
    if (conn.deadline !== 0) conn.deadline = this.#clock + this.#closeTimeout;
    this.#insert(conn);
    // Its topics came with it.
    const own = conn.topics;
    if (own !== null) {
      for (const topic of own) {
        if (this.#topics.add(conn, own, topic)) this.#backplane?.subscribe(topic);
      }
    }
    if (conn.readsHeld) this.#setInterest(conn);
    if (conn.hasPending && !conn.readsHeld) this.#readAgain(conn);
  }

  /**
   * Removes a connection from the manager without closing it (ws4py's `remove`): the
   * descriptor stays open and becomes the caller's, e.g. to `adopt` it elsewhere. Called
   * from one of its handlers, it stops dispatching at once: what arrived behind the current
   * message stays with the connection for its next manager. Returns false when `ws` is not
   * managed here.
   */
  remove(ws: WebSocket<T>): boolean {
    if (!this.has(ws)) return false;
    this.#leave(connectionOf(ws)!);
    return true;
  }

  // ------------------------------------------------------------------ topics

  /** Subscribes `ws` to `topic`. */
  subscribe(ws: WebSocket<T>, topic: string): void {
    const conn = connectionOf(ws);
    if (conn !== null && this.has(ws)) this.#subscribe(conn, topic);
  }

  /** Unsubscribes `ws` from `topic`. */
  unsubscribe(ws: WebSocket<T>, topic: string): void {
    const conn = connectionOf(ws);
    if (conn !== null) this.#unsubscribe(conn, topic);
  }

  /** Number of subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this.#topics.count(topic);
  }

  /** The topics with at least one subscriber. */
  get topics(): string[] {
    return this.#topics.names();
  }

  /**
   * Sends a message to every subscriber of `topic` (except `except`), encoded once; with a
   * backplane, also to the topic's subscribers elsewhere.
   *
   * @returns how many connections of this manager it was queued for.
   */
  publish(
    topic: string,
    data: string | ArrayBufferView | ArrayBuffer,
    options: DeliverOptions<T> = {},
  ): number {
    const [payload, binary] = normalize(data, options.binary);
    const except = options.except == null ? null : connectionOf(options.except);
    return this.#publish(topic, payload, binary, except, options.compress !== false);
  }

  /**
   * Sends a message to every open connection (except `except`): encoded once, written to
   * each connection with the rest of what it gets in this loop tick.
   *
   * @returns how many connections it was queued for.
   */
  broadcast(
    data: string | ArrayBufferView | ArrayBuffer,
    options: DeliverOptions<T> = {},
  ): number {
    const [payload, binary] = normalize(data, options.binary);
    const except = options.except == null ? null : connectionOf(options.except);
    return this.#deliver(this.#conns, payload, binary, except, options.compress !== false);
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Starts the loop as a task on the event loop; resolves nothing (see
   * {@link WebSocketManager.join}). Creates the backplane first: when that throws, the
   * manager stays not started (`join()` then releases it).
   */
  start(): void {
    if (this.#running) return;
    if (this.#stopping) {
      throw new ManagerError("MANAGER_STOPPED", "a stopped manager cannot restart");
    }
    const factory = this.#backplaneFactory;
    if (factory !== null) {
      // May throw (invalid backplane options): the manager is then left not started.
      const backplane = factory(this.#host, {
        message: (topic, payload, binary) => this.#deliverFromElsewhere(topic, payload, binary),
        gap: (gap) => this.#backplaneEvent(() => this.#onGap?.(gap)),
        error: (error) => this.#backplaneEvent(() => this.#onBackplaneError?.(error)),
      });
      this.#backplane = backplane;
      for (const topic of this.#topics.names()) backplane.subscribe(topic);
    }
    this.#running = true;
    const loop = this.#run();
    // A failing loop (a poller error) must not become an unhandled rejection that ends the
    // process: say it once here; join() still rejects with it.
    loop.catch((err) => console.error("fdws: the manager loop failed:", err));
    this.#loop = loop;
  }

  /**
   * Ends the loop (wakes a pending wait); connections still open are terminated by
   * `join()`. With a backplane, the loop first runs until the backplane has sent what it
   * holds and closed (bounded by its own timeout).
   */
  stop(): void {
    if (this.#stopping || this.#stopRequested) return;
    const backplane = this.#backplane;
    if (backplane !== null && this.#running) {
      this.#stopRequested = true;
      this.#backplane = null;
      backplane.close().catch((err) => this.#reportError(err, null)).finally(() => {
        this.#stopping = true;
        this.#poller.wake();
      });
      return;
    }
    this.#stopping = true;
    this.#poller.wake();
  }

  /**
   * Resolves once the loop has ended and every descriptor it owned is closed: connections
   * still open are terminated (closed() runs with 1006). Call `closeAll()` first for a
   * graceful end.
   */
  async join(): Promise<void> {
    if (this.#loop !== null) await this.#loop;
    else this.#teardown();
  }

  /**
   * Starts the closing handshake on every connection (code 1001 by default) and resolves
   * when all have closed, or when `timeout` ms passed and the rest were terminated.
   *
   * @throws {CloseCodeError} (before anything is sent) for a code or reason that may not
   * be sent.
   */
  closeAll(code = 1001, reason = "", timeout: number = this.#closeTimeout): Promise<void> {
    // Validate before any connection is closed: encoding the frame once checks both.
    encodeCloseFrame(code, reason);
    const done = Promise.withResolvers<void>();
    for (const conn of this.#conns.slice()) {
      if (conn.state === OPEN) conn.close(code, reason);
    }
    this.#flush();
    const deadline = performance.now() + timeout;
    const check = (): void => {
      if (this.#conns.length === 0) {
        done.resolve();
        return;
      }
      if (performance.now() >= deadline || !this.#running) {
        for (const conn of this.#conns.slice()) {
          conn.failReason = "close timeout";
          conn.terminate();
        }
        done.resolve();
        return;
      }
      setTimeout(check, 10);
    };
    check();
    return done.promise;
  }

  // ------------------------------------------------------------------ the host

  /** The object connections and poll targets call (never the public API). */
  #makeHost(): Host<T> {
    const readBuffer = this.#readBuffer;
    const readLength = BigInt(READ_LEN);
    return {
      owner: this,
      stats: this.stats,
      readBuffer,
      readLength,
      lendParser: (_conn, role) => this.#lendParser(role),
      returnParser: (conn, parser) => this.#returnParser(conn, parser),
      writable: (conn) => this.#outbox.flushConnection(conn),
      sendData: (conn, data, binary, compress) => this.#sendData(conn, data, binary, compress),
      sendControl: (conn, opcode, payload) => this.#sendControl(conn, opcode, payload),
      sendClose: (conn, code, reason) => this.#sendClose(conn, code, reason),
      expediteClose: (conn) => this.#expediteClose(conn),
      closeIfFlushed: (conn) => this.#closeIfFlushed(conn),
      buffered: (conn) => bufferedBytes(conn),
      leave: (conn) => this.#leave(conn),
      detach: (conn, code) => this.#detach(conn, code),
      reportError: (error: unknown, conn: Conn<T> | null = null) => this.#reportError(error, conn),
      timersChanged: () => this.#timersChanged(),
      readAgain: (conn) => this.#readAgain(conn),
      pauseReads: (conn) => {
        conn.holdReads();
        this.#setInterest(conn);
      },
      resumeReads: (conn) => {
        conn.releaseReads();
        this.#setInterest(conn);
        this.#readAgain(conn);
      },
      watch: (conn) => this.#setInterest(conn),
      subscribe: (conn, topic) => this.#subscribe(conn, topic),
      unsubscribe: (conn, topic) => this.#unsubscribe(conn, topic),
      publish: (topic, data, binary, except, compress) =>
        this.#publish(topic, data, binary, this.#publishToSelf ? null : except, compress),
      addTarget: (target, interest) => this.#addTarget(target, interest),
      modifyTarget: (target, interest) => this.#poller.modify(target.fd, TOKEN_OTHER, interest),
      removeTarget: (target) => this.#removeTarget(target),
      now: () => this.#now(),
      schedule: (fn) => this.#macrotasks.schedule(fn),
    };
  }

  /**
   * The coarse clock, first brought up to date when called between ticks (from a timer, a
   * fetch handler, a test): `#clock` alone may be as old as the last wake-up, up to the
   * housekeeping period, which would shorten deadlines set from it.
   */
  #now(): number {
    if (!this.#inTick) {
      const t = Math.floor(performance.now() - this.#epoch);
      if (t > this.#clock) this.#clock = t;
    }
    return this.#clock;
  }

  /**
   * Adds a connection on an open, non-blocking descriptor, already past its handshake:
   * `preface` goes out first (the 101 answer), `opened()` runs, then `initial` (frames that
   * came with the handshake) is parsed. The manager owns the descriptor from now on.
   */
  #attach(conn: Conn<T>, initial: Uint8Array | null, preface: Uint8Array | null): void {
    if (this.#stopping || this.#stopRequested) {
      conn.transport.close(conn.fd);
      conn.fd = -1;
      throw new ManagerError("MANAGER_STOPPED", "the manager is stopping");
    }
    this.#poller.register(conn.fd, TOKEN_CONN, Interest.READABLE);
    this.#now();
    conn.attach(this.#host);
    this.#insert(conn);
    this.stats.opened++;
    // The handshake response goes out first, ahead of anything opened() sends; copied, so
    // the server may build every answer in one scratch buffer.
    if (preface !== null) this.#outbox.pushFrame(conn, preface);
    try {
      conn.user.opened();
    } catch (err) {
      this.#reportError(err, conn);
    }
    // Bytes that came with the handshake are parsed even if opened() already started a
    // close (the peer's close reply or a split frame may be among them); if opened() moved
    // the connection elsewhere, they go with it.
    if (initial !== null && initial.length > 0 && conn.state !== CLOSED) {
      if (conn.host === this.#host) conn.parse(initial, 0, initial.length);
      else conn.keepPending(initial, 0, initial.length);
    }
    this.#scheduleFlush();
  }

  /** Links a connection that is already registered with the poller. */
  #insert(conn: Conn<T>): void {
    conn.index = this.#conns.length;
    this.#conns.push(conn);
    this.#table[conn.fd] = conn;
    if (conn.closeSent || conn.closeWhenFlushed) this.#timers.closing.add(conn);
    this.#timersChanged();
  }

  /** Unlinks `conn` from every table (it stays open). */
  #release(conn: Conn<T>): void {
    const i = conn.index;
    const conns = this.#conns;
    if (conns[i] !== conn) return;
    const last = conns.pop()!;
    if (last !== conn) {
      conns[i] = last;
      last.index = i;
    }
    conn.index = -1;
    if (this.#table[conn.fd] === conn) this.#table[conn.fd] = undefined;
    this.#poller.unregister(conn.fd);
    this.#timers.closing.delete(conn);
    // The connection keeps its own topic set: adopt() elsewhere subscribes it there again.
    const own = conn.topics;
    if (own !== null) {
      for (const topic of this.#topics.removeAll(conn, own)) this.#backplane?.unsubscribe(topic);
    }
  }

  /** `conn` moves away: write what it has, forget it, keep it open. */
  #leave(conn: Conn<T>): void {
    this.#flush();
    this.#outbox.detach(conn);
    this.#release(conn);
    conn.detachHost();
  }

  /** `conn` is finished: forget it and close its descriptor. */
  #detach(conn: Conn<T>, code: number): void {
    this.#outbox.discard(conn);
    this.#release(conn);
    conn.transport.close(conn.fd);
    const byCode = this.stats.closedByCode;
    byCode[code] = (byCode[code] ?? 0) + 1;
  }

  #lendParser(role: "server" | "client"): FrameParser {
    // Parsing from inside a callback of another parse (unusual) must not share its parser.
    if (this.#parsing) return this.#newParser(role);
    this.#parsing = true;
    return role === "client" ? this.#clientParser : this.#serverParser;
  }

  #returnParser(conn: Conn<T>, parser: FrameParser): boolean {
    const shared = parser === this.#serverParser || parser === this.#clientParser;
    if (shared) this.#parsing = false;
    if (parser.idle) return false;
    if (parser.finished || conn.state === CLOSED) {
      parser.reset();
      return false;
    }
    // A frame or message is split across reads: the connection keeps this parser.
    if (shared) {
      if (parser === this.#clientParser) this.#clientParser = this.#newParser("client");
      else this.#serverParser = this.#newParser("server");
    }
    return true;
  }

  #newParser(role: "server" | "client"): FrameParser {
    return new FrameParser({
      role,
      maxMessageSize: this.#maxMessageSize,
      budget: this.#budget,
      lend: this.#lend,
    });
  }

  #reportError(err: unknown, conn: Conn<T> | null): void {
    this.stats.callbackErrors++;
    if (conn !== null) {
      if (!reportToWebSocket(conn.user, err)) {
        console.error("fdws: a WebSocket callback threw:", err);
      }
      return;
    }
    const hook = this.#handlers.error;
    if (hook !== undefined) {
      try {
        hook(null, err);
        return;
      } catch (inner) {
        console.error("fdws: the error handler threw:", inner);
      }
    }
    // Outside a connection the error is as often the server's own (a descriptor the poller
    // cannot watch, a failed accept) as a callback's: say which.
    const what = err instanceof FdwsError ? "fdws: server error:" : "fdws: a callback threw:";
    console.error(what, err);
  }

  #timersChanged(): void {
    // The sleeping wait's timeout may now be too long: wake it to compute a new one.
    if (this.#parked) this.#poller.wake();
  }

  #readAgain(conn: Conn<T>): void {
    this.#again.push(conn);
    if (this.#parked) this.#poller.wake();
  }

  #addTarget(target: PollTarget, interest: number): void {
    this.#poller.register(target.fd, TOKEN_OTHER, interest);
    this.#table[target.fd] = target;
    this.#targets.add(target);
    this.#timersChanged();
  }

  #removeTarget(target: PollTarget): void {
    if (this.#table[target.fd] === target) this.#table[target.fd] = undefined;
    if (this.#targets.delete(target)) this.#poller.unregister(target.fd);
  }

  // ------------------------------------------------------------------ sending

  /** Applies the backpressure policy; true when `len` more bytes may be queued. */
  #admit(conn: Conn<T>, len: number): boolean {
    const buffered = bufferedBytes(conn);
    if (buffered === 0 || buffered + len <= this.#limit) return true;
    switch (this.#policy) {
      case "buffer":
        return true;
      case "drop":
        conn.dropped++;
        this.stats.droppedMessages++;
        return false;
      default:
        if (this.#deferDrops) this.#slow.push(conn);
        else this.#dropSlowConsumer(conn);
        return false;
    }
  }

  #dropSlowConsumer(conn: Conn<T>): void {
    this.stats.slowConsumers++;
    conn.failReason = "slow consumer: backpressure limit exceeded";
    if (conn.partial || conn.closeSent) {
      conn.terminate();
      return;
    }
    this.#outbox.discard(conn);
    const frame = encodeCloseFrame(1008, "backpressure limit exceeded", conn.role === "client");
    const n = conn.transport.write(conn.fd, frame, frame.length);
    if (n !== frame.length) {
      conn.terminate();
      return;
    }
    conn.closeSent = true;
    conn.state = CLOSING;
    conn.deadline = this.#now() + this.#closeTimeout;
    this.#timers.closing.add(conn);
    this.#timersChanged();
  }

  /**
   * Queues one message for one connection: compressed when it negotiated
   * permessage-deflate and `compress` allows, masked when it is a client.
   */
  #sendData(conn: Conn<T>, data: string | Uint8Array, binary: boolean, compress: boolean): number {
    const opcode = binary ? OPCODE_BINARY : OPCODE_TEXT;
    const outbox = this.#outbox;
    let payload = data;
    let rsv1 = false;
    const deflater = compress ? conn.deflater : null;
    if (deflater !== null) {
      const bytes = typeof data === "string" ? utf8.encode(data) : data;
      const n = deflater.compress(bytes, 0, bytes.length);
      if (n >= 0) {
        payload = deflater.output.subarray(0, n);
        rsv1 = true;
      }
    }
    let length: number;
    let admitted: boolean;
    if (conn.role === "client") {
      const frame = encodeFrame(opcode, payload, { mask: true, rsv1 });
      length = frame.length;
      admitted = this.#admit(conn, length);
      if (admitted) outbox.pushChunk(conn, frame);
    } else {
      length = outbox.encode(opcode, payload, rsv1, SLOT_ONE);
      admitted = this.#admit(conn, length);
      if (admitted) outbox.pushEncoded(conn, SLOT_ONE);
      outbox.releaseEncoded(SLOT_ONE);
    }
    if (!admitted) {
      // The peer never sees this message: a compressor with context takeover must forget
      // it too.
      if (rsv1) deflater!.resetCompression();
      return SendStatus.DROPPED;
    }
    this.stats.messagesOut++;
    this.#scheduleFlush();
    return bufferedBytes(conn) > this.#limit ? SendStatus.BACKPRESSURE : length;
  }

  #sendControl(
    conn: Conn<T>,
    opcode: typeof OPCODE_PING | typeof OPCODE_PONG,
    payload: string | Uint8Array,
  ): boolean {
    const frame = encodeControlFrame(opcode, payload, conn.role === "client");
    // Pings and pongs obey the backpressure limit too: a peer that pings without reading
    // would otherwise queue pongs without bound.
    if (!this.#admit(conn, frame.length)) return false;
    this.#outbox.pushFrame(conn, frame);
    this.#scheduleFlush();
    return true;
  }

  #sendClose(conn: Conn<T>, code: number, reason: string): void {
    const frame = code === 0
      ? encodeCloseFrame(undefined, undefined, conn.role === "client")
      : encodeCloseFrame(code, reason, conn.role === "client");
    this.#outbox.pushFrame(conn, frame);
    conn.closeLength = frame.length;
    conn.closeSent = true;
    if (conn.state === OPEN) conn.state = CLOSING;
    conn.deadline = this.#now() + this.#closeTimeout;
    this.#timers.closing.add(conn);
    this.#timersChanged();
    this.#scheduleFlush();
  }

  #expediteClose(conn: Conn<T>): void {
    if (conn.closeLength === 0 || conn.state === CLOSED) return;
    conn.expediteClose();
    // Already waiting for the peer to read: the close moves up now. Otherwise the outbox
    // does it if a later write blocks.
    if (conn.blocked) this.#outbox.expedite(conn, conn.closeTail);
  }

  #subscribe(conn: Conn<T>, topic: string): void {
    if (conn.host !== this.#host) return;
    const own = conn.topics ?? (conn.topics = new Set());
    if (own.has(topic)) return;
    if (this.#topics.add(conn, own, topic)) this.#backplane?.subscribe(topic);
  }

  #unsubscribe(conn: Conn<T>, topic: string): void {
    if (this.#topics.remove(conn, conn.topics, topic)) this.#backplane?.unsubscribe(topic);
  }

  #publish(
    topic: string,
    data: string | Uint8Array,
    binary: boolean,
    except: Conn<T> | null,
    compress = true,
  ): number {
    const set = this.#topics.subscribers(topic);
    const count = set === undefined ? 0 : this.#deliver(set, data, binary, except, compress);
    const backplane = this.#backplane;
    if (backplane !== null) {
      backplane.publish(topic, typeof data === "string" ? utf8.encode(data) : data, binary);
    }
    return count;
  }

  /**
   * A message published through the backplane by another manager. Text arrives as UTF-8
   * bytes and is framed as they are; the bytes are encoded at once (the view is the
   * backplane's, valid during this call only).
   */
  #deliverFromElsewhere(topic: string, data: Uint8Array, binary: boolean): void {
    const set = this.#topics.subscribers(topic);
    if (set === undefined) return;
    this.#deliver(set, data, binary, null);
  }

  /** Runs an application callback about the backplane, reporting what it throws. */
  #backplaneEvent(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#reportError(err, null);
    }
  }

  /**
   * Sends one message to many connections, encoded once: a plain frame for those without
   * compression, a compressed frame per shared window for those with permessage-deflate
   * in a shared mode (compressed once for all of them), per connection for clients (masked)
   * and for dedicated compressors (context takeover). Frames are made only when a target
   * needs them, so a population that all compresses adds no plain frame to the arena.
   */
  #deliver(
    targets: Iterable<Conn<T>>,
    data: string | Uint8Array,
    binary: boolean,
    except: Conn<T> | null,
    compress = true,
  ): number {
    const outbox = this.#outbox;
    const opcode = binary ? OPCODE_BINARY : OPCODE_TEXT;
    let plainLength = -1;
    let zipWindow = -2;
    let zipLength = -1;
    let bytes: Uint8Array | null = null;
    let count = 0;
    let viaSendData = 0;
    const nested = this.#deferDrops;
    this.#deferDrops = true;
    try {
      for (const conn of targets) {
        if (conn === except || conn.state !== OPEN) continue;
        const deflater = compress ? conn.deflater : null;
        if (conn.role === "client" || (deflater !== null && deflater.sharedWindowBits < 0)) {
          // Masked with a key of its own, or compressed with a context of its own.
          const r = this.#sendData(conn, data, binary, compress);
          if (r > 0 || r === SendStatus.BACKPRESSURE) {
            count++;
            viaSendData++;
          }
          continue;
        }
        let slot = SLOT_PLAIN;
        let length: number;
        if (deflater !== null) {
          if (deflater.sharedWindowBits !== zipWindow) {
            zipWindow = deflater.sharedWindowBits;
            bytes ??= typeof data === "string" ? utf8.encode(data) : data;
            const n = deflater.compress(bytes, 0, bytes.length);
            zipLength = n < 0
              ? -1
              : outbox.encode(opcode, deflater.output.subarray(0, n), true, SLOT_ZIP);
          }
          if (zipLength >= 0) slot = SLOT_ZIP;
        }
        if (slot === SLOT_ZIP) {
          length = zipLength;
        } else {
          if (plainLength < 0) plainLength = outbox.encode(opcode, data, false, SLOT_PLAIN);
          length = plainLength;
        }
        if (!this.#admit(conn, length)) continue;
        outbox.pushEncoded(conn, slot);
        count++;
      }
    } finally {
      this.#deferDrops = nested;
      // Every queue that took a pooled frame holds its own reference; ours ends here.
      outbox.releaseEncoded(SLOT_PLAIN);
      outbox.releaseEncoded(SLOT_ZIP);
    }
    // #sendData counted its own messages.
    this.stats.messagesOut += count - viaSendData;
    if (!nested && this.#slow.length > 0) {
      for (const conn of this.#slow.splice(0)) {
        if (conn.state === OPEN) this.#dropSlowConsumer(conn);
      }
    }
    this.#scheduleFlush();
    return count;
  }

  #scheduleFlush(): void {
    if (!this.#inTick && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
  }

  #flush(): void {
    this.#outbox.flush();
    if (this.#timers.closing.size > 0) this.#checkClosing();
  }

  /** Finishes connections whose closing handshake is done and whose close frame went out. */
  #checkClosing(): void {
    for (const conn of this.#timers.closing) {
      if (conn.closeWhenFlushed && bufferedBytes(conn) === 0) this.#closeIfFlushed(conn);
    }
  }

  /** Closes `conn` if its closing handshake is complete and nothing is left to write. */
  #closeIfFlushed(conn: Conn<T>): void {
    if (!conn.closeWhenFlushed || conn.state === CLOSED) return;
    if (bufferedBytes(conn) !== 0) {
      this.#timers.closing.add(conn);
      this.#timersChanged();
      return;
    }
    if (!conn.closeReceived) {
      // We failed the connection: no close frame came, so the code is 1006.
      conn.finish(1006, conn.failReason);
      return;
    }
    if (conn.role === "client") {
      // RFC 6455 §7.1.1: the client waits for the server to close TCP (EOF in read()),
      // within the close timeout.
      conn.deadline = Math.min(conn.deadline || Infinity, this.#now() + this.#closeTimeout);
      this.#timers.closing.add(conn);
      this.#timersChanged();
      return;
    }
    conn.finish(conn.peerCode, conn.peerReason);
  }

  #setWriteInterest(conn: Conn<T>, on: boolean): void {
    conn.blocked = on;
    this.#setInterest(conn);
  }

  /** Watches `conn` for input unless its reads are held, and for writability while blocked. */
  #setInterest(conn: Conn<T>): void {
    if (conn.fd < 0 || this.#table[conn.fd] !== conn) return;
    const read = conn.readsHeld ? 0 : Interest.READABLE;
    const interest = (conn.blocked ? read | Interest.WRITABLE : read) | conn.transport.wants;
    this.#poller.modify(conn.fd, TOKEN_CONN, interest);
  }

  #onDrained(conn: Conn<T>): void {
    this.#setWriteInterest(conn, false);
    if (conn.closeWhenFlushed) {
      this.#closeIfFlushed(conn);
      return;
    }
    if (conn.state !== OPEN) return;
    try {
      conn.user.drained();
    } catch (err) {
      this.#reportError(err, conn);
    }
  }

  // ------------------------------------------------------------------ loop

  async #run(): Promise<void> {
    const poller = this.#poller;
    const events = this.#events;
    const table = this.#table;
    // The loop has just polled when it goes to wait: our pollers skip asking again.
    const waitIdle = poller instanceof BasePoller
      ? (timeout: number) => poller.waitAfterPoll(events, timeout)
      : (timeout: number) => poller.wait(events, timeout);
    const spin = new IdleSpin();
    let lastYield = performance.now();
    let lastTimers = lastYield;
    try {
      while (!this.#stopping) {
        let now = performance.now();
        if (now - lastYield >= YIELD_MS) {
          if (now - lastTimers >= TIMER_YIELD_MS) {
            await this.#macrotasks.timerTurn();
            lastTimers = performance.now();
          } else {
            await this.#macrotasks.turn();
          }
          if (this.#stopping) break;
          lastYield = now = performance.now();
        }
        let n = poller.pollNow(events);
        // How long the loop just waited with nothing to do: a costly heap trim waits for it.
        let quietFor = 0;
        if (n === 0 && this.#again.length === 0 && spin.armed) {
          const until = now + SPIN_MS;
          do n = poller.pollNow(events); while (n === 0 && performance.now() < until);
          spin.spun(n > 0);
          if (n > 0) now = performance.now();
        }
        if (n === 0 && this.#again.length === 0) {
          this.#parked = true;
          const parkedAt = performance.now();
          try {
            n = await waitIdle(this.#waitTimeout());
          } finally {
            this.#parked = false;
          }
          if (this.#stopping) break;
          // Parked, the event loop ran whatever was due, timers included.
          lastYield = lastTimers = now = performance.now();
          spin.parked(now - parkedAt, n);
          if (n === 0) quietFor = now - parkedAt;
        }
        // Never backwards: #now() may have advanced it between ticks.
        this.#clock = Math.max(this.#clock, Math.floor(now - this.#epoch));
        this.#inTick = true;
        for (let i = 0; i < n; i++) {
          const entry = table[events.fds[i]];
          if (entry === undefined) continue;
          try {
            entry.onReady(events.ready[i]);
          } catch (err) {
            this.#reportError(err, null);
          }
        }
        if (this.#again.length > 0) this.#readAgainNow();
        this.#flush();
        this.#endTick();
        recordTick(this.stats.ticks, (performance.now() - now) / 1000);
        if (this.#timers.due(this.#clock)) this.#housekeeping();
        if (n > 0) this.#heapTrim.touch(this.#clock);
        this.#heapTrim.maybeRun(this.#clock, quietFor);
      }
    } finally {
      this.#inTick = false;
      this.#teardown();
      // A trim still running on its worker thread would outlive the manager's stop.
      await this.#heapTrim.settled();
    }
  }

  /** How long the loop may park (ms, -1 for no limit): until a timer or a heap trim is due. */
  #waitTimeout(): number {
    const timeout = this.#timers.waitTimeout(this.#clock, this.#conns.length, this.#targets);
    const untilTrim = this.#heapTrim.wakeIn(this.#clock);
    if (untilTrim === Infinity) return timeout;
    return timeout < 0 ? untilTrim : Math.min(timeout, untilTrim);
  }

  /** Reads the connections that asked to be read without waiting for readiness. */
  #readAgainNow(): void {
    const list = this.#again;
    this.#again = [];
    for (const conn of list) {
      if (conn.host !== this.#host || conn.state === CLOSED) continue;
      try {
        conn.onReady(READABLE_READY);
      } catch (err) {
        this.#reportError(err, null);
      }
    }
  }

  #housekeeping(): void {
    this.#inTick = true;
    this.#timers.run(this.#clock, this.#conns, this.#targets, {
      closeTimedOut: (conn) => conn.terminate(),
      idleTimedOut: (conn) => {
        this.stats.idleTimeouts++;
        conn.terminate();
      },
      sendPing: (conn) => this.#sendControl(conn, OPCODE_PING, EMPTY),
      reportError: (err) => this.#reportError(err, null),
    });
    this.#flush();
    this.#endTick();
  }

  /**
   * Leaves the tick. Callbacks that the end-of-tick flush itself ran (`drain`, `close`,
   * `error`) may have queued frames after it wrote; they go out in a microtask instead of
   * waiting for the next readiness or housekeeping wake-up (up to 250 ms later).
   */
  #endTick(): void {
    this.#inTick = false;
    if (this.#outbox.pending > 0) this.#scheduleFlush();
  }

  #teardown(): void {
    this.#running = false;
    this.#stopping = true;
    for (const conn of this.#conns.slice()) {
      conn.failReason ||= "manager stopped";
      conn.terminate();
    }
    for (const t of [...this.#targets]) {
      this.#removeTarget(t);
      t.close();
    }
    // Stopped without stop() (join() alone, or the loop failed): nothing can be sent any
    // more, but the backplane still releases what it holds.
    const backplane = this.#backplane;
    this.#backplane = null;
    backplane?.close().catch(() => {});
    if (this.#ownsPoller) this.#poller.close();
    this.#macrotasks.close();
  }
}

/** The host of `manager`: the loop interface for the server, the client and backplanes. */
export function loopOf<T>(manager: WebSocketManager<T>): IoLoop {
  return hostOf(manager);
}

/**
 * Adds a connection whose handshake is done to `manager` (the server and the client do
 * this): `preface` is written first, `opened()` runs, then `initial` is parsed.
 *
 * @throws {ManagerError} `MANAGER_STOPPED` (the descriptor is closed then).
 */
export function attachConnection<T>(
  manager: WebSocketManager<T>,
  conn: Connection<WebSocket<T>>,
  initial: Uint8Array | null,
  preface: Uint8Array | null,
): void {
  attachTo(manager, conn, initial, preface);
}

/** A message's bytes or text and whether it is binary. */
function normalize(
  raw: string | ArrayBufferView | ArrayBuffer,
  binary: boolean | undefined,
): [string | Uint8Array, boolean] {
  if (typeof raw === "string") {
    return binary === true ? [utf8.encode(raw), true] : [raw, false];
  }
  const bytes = raw instanceof Uint8Array
    ? raw
    : ArrayBuffer.isView(raw)
    ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
    : new Uint8Array(raw);
  return [bytes, binary !== false];
}

/** A budget of `total` bytes. */
function byteBudget(total: number): MessageBudget {
  let free = total;
  return {
    take(bytes: number): boolean {
      if (bytes > free) return false;
      free -= bytes;
      return true;
    },
    give(bytes: number): void {
      free += bytes;
    },
  };
}

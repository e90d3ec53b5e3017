/**
 * The WebSocketManager: ws4py's `manager.py` (add, remove, broadcast, close_all, stop,
 * join) on a readiness poller, as a task on the Deno event loop.
 *
 * @module
 */

import { closeFd } from "../net/tcp.ts";
import { sendFrom } from "../net/io.ts";
import { createPoller } from "../poller/default.ts";
import { Events, Interest, type Poller, type PollerKind, Ready } from "../poller/poller.ts";
import {
  encodeCloseFrame,
  encodeControlFrame,
  encodeFrame,
  frameHeaderLength,
  writeFrameHeader,
} from "../protocol/frame/encoder.ts";
import { type FrameHandler, FrameParser } from "../protocol/frame/parser.ts";
import { MacrotaskQueue } from "./macrotask.ts";
import { framePool, Outbox } from "./outbox.ts";
import { WebSocket } from "./websocket.ts";
import { FdwsError } from "../errors.ts";

/**
 * Functions called at the moments of a connection's life. They are the functional
 * alternative to overriding the hooks of {@link WebSocket}.
 *
 * @typeParam T Type of `ws.data`.
 */
export interface WebSocketHandlers<T = unknown> {
  /** The connection is open. */
  open?(ws: WebSocket<T>): void;
  /** A complete message: a string for text, bytes for binary (see `binaryType`). */
  message?(ws: WebSocket<T>, data: string | Uint8Array | ArrayBuffer): void;
  /** The connection closed; runs once. 1006 when no close frame was received. */
  close?(ws: WebSocket<T>, code: number, reason: string): void;
  /** The connection wrote everything it had queued after its socket had been full. */
  drain?(ws: WebSocket<T>): void;
  /** A ping arrived (the pong is sent automatically). */
  ping?(ws: WebSocket<T>, payload: Uint8Array): void;
  /** A pong arrived. */
  pong?(ws: WebSocket<T>, payload: Uint8Array): void;
  /** A callback threw (`ws` is null for errors outside a connection). */
  error?(ws: WebSocket<T> | null, error: unknown): void;
}

/** What happens to a connection whose unsent bytes pass the backpressure limit. */
export type BackpressurePolicy = "close" | "drop" | "buffer";

/** Options of a {@link WebSocketManager}. */
export interface ManagerOptions<T = unknown> {
  /** Poller instance or mechanism; default: the best for this system. */
  poller?: Poller | PollerKind;
  /** Largest message accepted (bytes); larger ones close the connection with 1009. Default 64 MiB. */
  maxMessageSize?: number;
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
   * in `ws.droppedMessages` and return false from `send()`. `"buffer"`: no limit.
   */
  backpressurePolicy?: BackpressurePolicy;
  /** Handler functions; see {@link WebSocketHandlers}. */
  handlers?: WebSocketHandlers<T>;
}

/** Counters of a manager, updated as it runs. */
export interface ManagerStats {
  /** Connections added since start (accepted upgrades and clients). */
  opened: number;
  /** Connections closed, by close code (1006 for those without a close frame). */
  closedByCode: Record<number, number>;
  /** Complete messages received. */
  messagesIn: number;
  /** Messages queued for sending (a broadcast to N connections counts N). */
  messagesOut: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes accepted by the kernel for sending. */
  bytesOut: number;
  /** Connections closed because they did not read fast enough. */
  slowConsumers: number;
  /** Messages dropped by the `"drop"` policy. */
  droppedMessages: number;
  /** Connections terminated for silence (idle timeout). */
  idleTimeouts: number;
  /** Connections failed for breaking the protocol. */
  protocolErrors: number;
  /** Callbacks that threw. */
  callbackErrors: number;
}

/**
 * Something else the manager polls for (the server's listener and pending handshakes).
 * @ignore
 */
export interface PollTarget {
  /** Descriptor. */
  readonly fd: number;
  /** Readiness bits from {@link Ready}. */
  onReady(ready: number): void;
  /** Called by housekeeping with the coarse clock (ms); may close itself. */
  onTimer?(now: number): void;
  /** When `onTimer` next has work (manager clock, ms); Infinity: none. Absent: every tick. */
  nextTimer?(): number;
  /** Releases the target when the manager shuts down (unregistered already). */
  close(): void;
}

/** Thrown for misuse of a manager (`code` `"MANAGER_STOPPED"`, `"ALREADY_MANAGED"`, ...). */
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

const TOKEN_WS = 0;
const TOKEN_OTHER = 1;
const READ_LEN = 256 * 1024;
const HOUSEKEEPING_MS = 250;
/** Busy ticks give the event loop (timers, signals, other I/O) a turn at least this often. */
const YIELD_MS = 4;

/**
 * Routes parser output to the connection being read; one per manager, no allocation per
 * read. A connection closed by a callback gets nothing more: the parser is stopped.
 */
class Dispatcher implements FrameHandler {
  ws!: WebSocket;
  parser!: FrameParser;
  #gone(): boolean {
    if (this.ws._state !== WebSocket.CLOSED) return false;
    this.parser.reset();
    return true;
  }
  onMessage(data: string | Uint8Array): void {
    if (!this.#gone()) this.ws._onMessage(data);
  }
  onPing(payload: Uint8Array): void {
    if (!this.#gone()) this.ws._onPing(payload);
  }
  onPong(payload: Uint8Array): void {
    if (!this.#gone()) this.ws._onPong(payload);
  }
  onClose(code: number, reason: string): void {
    if (!this.#gone()) this.ws._onClose(code, reason);
  }
  onFail(code: number, reason: string): void {
    if (!this.#gone()) this.ws._onFail(code, reason);
  }
}

const utf8 = new TextEncoder();

/**
 * Runs many WebSocket connections on one poller: reads, parses and dispatches what
 * arrives, writes what is sent (corked: one send per connection per loop tick),
 * broadcasts and publishes to topics, enforces backpressure, heartbeats and timeouts.
 *
 * @typeParam T Type of `ws.data` of its connections.
 *
 * @example Broadcast to every connection of a manager
 * ```ts ignore
 * import { WebSocketManager } from "../../mod.ts";
 * const manager = new WebSocketManager({ handlers: { message: (ws, data) => manager.broadcast(data) } });
 * manager.start();
 * // server or client connections are added with manager.add(ws) ...
 * await manager.closeAll(1001, "bye");
 * manager.stop();
 * await manager.join();
 * ```
 */
export class WebSocketManager<T = unknown> {
  /** Live counters. */
  readonly stats: ManagerStats = {
    opened: 0,
    closedByCode: {},
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    slowConsumers: 0,
    droppedMessages: 0,
    idleTimeouts: 0,
    protocolErrors: 0,
    callbackErrors: 0,
  };

  /** @ignore Shared read buffer: connections keep no read buffer of their own. */
  readonly _readBuf: Uint8Array = new Uint8Array(new ArrayBuffer(READ_LEN));
  /** @ignore Its length as the BigInt the FFI fast path wants. */
  readonly _readLen: bigint = BigInt(READ_LEN);
  /** @ignore */
  readonly _dispatcher: Dispatcher = new Dispatcher();
  /** @ignore Turns of the event loop for the busy loop (and the client). */
  readonly _macrotasks: MacrotaskQueue = new MacrotaskQueue();
  /** @ignore */
  _handlers: WebSocketHandlers<T>;
  /** @ignore Milliseconds since the manager was created, advanced once per loop tick. */
  _clock = 0;

  /**
   * @ignore The coarse clock, first brought up to date when called between ticks (from a
   * timer, a fetch handler, a test): `_clock` alone may be as old as the last wake-up,
   * up to the 250 ms housekeeping period, which would shorten deadlines set from it.
   */
  _now(): number {
    if (!this.#inTick) {
      const t = Math.floor(performance.now() - this.#epoch);
      if (t > this._clock) this._clock = t;
    }
    return this._clock;
  }

  readonly #poller: Poller;
  readonly #ownsPoller: boolean;
  readonly #events = new Events(1024);
  readonly #outbox: Outbox<WebSocket<T>>;
  readonly #conns: WebSocket<T>[] = [];
  readonly #table: (WebSocket<T> | PollTarget | undefined)[] = [];
  readonly #topics = new Map<string, Set<WebSocket<T>>>();
  readonly #closing = new Set<WebSocket<T>>();
  readonly #targets = new Set<PollTarget>();
  readonly #epoch = performance.now();
  readonly #maxMessageSize: number;
  /** A `_parse` is running (its shared parser is in use). */
  #parsing = false;
  /** Parsers idle connections share, per role (see `_parse`). */
  #serverParser: FrameParser;
  #clientParser: FrameParser;
  readonly #pingInterval: number;
  readonly #idleTimeout: number;
  readonly #closeTimeout: number;
  readonly #limit: number;
  readonly #policy: BackpressurePolicy;
  #running = false;
  #stopping = false;
  #loop: Promise<void> | null = null;
  #inTick = false;
  #flushScheduled = false;
  #nextHousekeeping = 0;
  /** The loop sleeps in a wait whose timeout was computed from the timers of that moment. */
  #parked = false;
  #lastHeartbeat = 0;
  readonly #flushTask = (): void => {
    this.#flushScheduled = false;
    if (!this.#inTick) this.#flush();
  };

  /**
   * Creates a stopped manager; `start()` runs it.
   * @param options See {@link ManagerOptions}.
   */
  constructor(options: ManagerOptions<T> = {}) {
    const p = options.poller;
    this.#poller = p === undefined || typeof p === "string" ? createPoller(p) : p;
    this.#ownsPoller = p === undefined || typeof p === "string";
    this.#maxMessageSize = options.maxMessageSize ?? 64 * 1024 * 1024;
    this.#serverParser = new FrameParser({ role: "server", maxMessageSize: this.#maxMessageSize });
    this.#clientParser = new FrameParser({ role: "client", maxMessageSize: this.#maxMessageSize });
    this.#pingInterval = options.pingInterval ?? 30_000;
    this.#idleTimeout = options.idleTimeout ?? 60_000;
    this.#closeTimeout = options.closeTimeout ?? 5_000;
    this.#limit = options.backpressureLimit ?? 16 * 1024 * 1024;
    this.#policy = options.backpressurePolicy ?? "close";
    this._handlers = options.handlers ?? {};
    this.#outbox = new Outbox<WebSocket<T>>({
      blocked: (ws) => this.#setWriteInterest(ws, true),
      drained: (ws) => this.#onDrained(ws),
      failed: (ws) => {
        ws._failReason = "write failed";
        ws.terminate();
      },
      wrote: (n) => {
        this.stats.bytesOut += n;
      },
    });
  }

  /** The poller the manager waits on. */
  get poller(): Poller {
    return this.#poller;
  }

  /** Number of connections (open or closing). */
  get size(): number {
    return this.#conns.length;
  }

  /** True between `start()` and the end of the loop. */
  get running(): boolean {
    return this.#running;
  }

  /** True when `ws` is one of this manager's connections. */
  has(ws: WebSocket<T>): boolean {
    return ws._m === (this as WebSocketManager) && this.#conns[ws._index] === ws;
  }

  /** Iterates over the connections. */
  [Symbol.iterator](): IterableIterator<WebSocket<T>> {
    return this.#conns.slice()[Symbol.iterator]();
  }

  /**
   * Adds a connection on an open, non-blocking socket descriptor, already past its
   * handshake. `initial` holds bytes that arrived after the handshake (frames). Runs
   * `opened()`. The manager owns the descriptor from now on.
   *
   * @ignore Used by the server and the client; applications pass connections between
   * managers with {@link WebSocketManager.adopt}.
   */
  _addSocket(
    ws: WebSocket<T>,
    fd: number,
    role: "server" | "client",
    initial: Uint8Array | null,
    preface: Uint8Array | null = null,
  ): void {
    if (this.#stopping) {
      closeFd(fd);
      throw new ManagerError("MANAGER_STOPPED", "the manager is stopping");
    }
    this._now(); // _attach() stamps _lastSeen with the clock
    ws._attach(this as WebSocketManager, fd, role);
    this.#insert(ws);
    this.stats.opened++;
    // The handshake response goes out first, ahead of anything opened() sends.
    if (preface !== null) this.#outbox.pushChunk(ws, preface);
    try {
      ws.opened();
    } catch (err) {
      this._reportError(err, ws);
    }
    // Bytes that came with the handshake are parsed even if opened() already started a
    // close: the peer's close reply or a split frame may be among them.
    if (initial !== null && initial.length > 0 && ws._state !== WebSocket.CLOSED) {
      this._parse(ws, initial, 0, initial.length);
    }
    this.#scheduleFlush();
  }

  /**
   * Moves a connection from its current manager to this one (ws4py's `add`): queued data
   * is written first on the old one. The connection keeps its state and subscriptions
   * are dropped (topics belong to a manager).
   */
  adopt(ws: WebSocket<T>): void {
    const from = ws._m as WebSocketManager<T> | null;
    if (from === (this as WebSocketManager<T>)) return;
    // A connection given up with remove() has no manager but still has its socket.
    if (ws._state === WebSocket.CLOSED || ws.fd < 0) {
      throw new ManagerError("NOT_OPEN", "only an open connection can be moved");
    }
    if (this.#stopping) throw new ManagerError("MANAGER_STOPPED", "the manager is stopping");
    if (from !== null) {
      from.#flush();
      from.#release(ws);
    }
    ws._m = this as WebSocketManager;
    // Times on the connection are on the old manager's clock (each counts from its own
    // creation): restart them on this one.
    const now = this._now();
    ws._lastSeen = now;
    ws._pingOutstanding = false;
    if (ws._deadline !== 0) ws._deadline = now + this.#closeTimeout;
    this.#insert(ws);
    if (ws._blocked) this.#setWriteInterest(ws, true);
  }

  /**
   * Removes a connection from the manager without closing it (ws4py's `remove`): the
   * descriptor stays open and becomes the caller's, e.g. to `adopt` it elsewhere.
   * Returns false when `ws` is not managed here.
   */
  remove(ws: WebSocket<T>): boolean {
    if (!this.has(ws)) return false;
    this.#flush();
    this.#release(ws);
    ws._m = null;
    return true;
  }

  #insert(ws: WebSocket<T>): void {
    ws._index = this.#conns.length;
    this.#conns.push(ws);
    this.#table[ws.fd] = ws;
    this.#poller.register(ws.fd, TOKEN_WS, Interest.READABLE);
    if (ws._closeSent || ws._closeWhenFlushed) this.#closing.add(ws);
    this._timersChanged();
  }

  /** Unlinks `ws` from every table (it stays open). */
  #release(ws: WebSocket<T>): void {
    const i = ws._index;
    const conns = this.#conns;
    if (conns[i] !== ws) return;
    const last = conns.pop()!;
    if (last !== ws) {
      conns[i] = last;
      last._index = i;
    }
    ws._index = -1;
    if (this.#table[ws.fd] === ws) this.#table[ws.fd] = undefined;
    this.#poller.unregister(ws.fd);
    this.#closing.delete(ws);
    if (ws._topics !== null) {
      for (const t of ws._topics) {
        const set = this.#topics.get(t);
        if (set !== undefined) {
          set.delete(ws);
          if (set.size === 0) this.#topics.delete(t);
        }
      }
      ws._topics = null;
    }
  }

  /**
   * @ignore Parses bytes received by `ws` and dispatches what they complete.
   *
   * Between messages a connection holds no parser: it borrows the manager's shared one,
   * and keeps it only when the bytes end inside a frame or a fragmented message (the
   * manager then makes itself a new shared one). So an idle connection costs no parser
   * memory, and a busy one allocates nothing per read.
   */
  _parse(ws: WebSocket<T>, buf: Uint8Array, start: number, end: number): void {
    const own = ws._parser;
    let parser = own ?? (ws._role === "client" ? this.#clientParser : this.#serverParser);
    // Parsing from inside a callback of another parse (unusual) must not share its parser.
    if (own === null && this.#parsing) {
      parser = new FrameParser({ role: ws._role, maxMessageSize: this.#maxMessageSize });
    }
    const outer = this.#parsing;
    const d = this._dispatcher;
    const prevWs = d.ws;
    const prevParser = d.parser;
    this.#parsing = true;
    d.ws = ws as WebSocket;
    d.parser = parser;
    try {
      parser.push(buf, start, end, d);
    } finally {
      this.#parsing = outer;
      d.ws = prevWs;
      d.parser = prevParser;
      if (own !== null) {
        if (!ws._parserPinned && (own.idle || own.finished)) ws._parser = null;
      } else if (!parser.idle) {
        if (parser.finished || ws._state === WebSocket.CLOSED) {
          parser.reset();
        } else {
          ws._parser = parser;
          if (!outer) {
            const fresh = new FrameParser({ role: ws._role, maxMessageSize: this.#maxMessageSize });
            if (ws._role === "client") this.#clientParser = fresh;
            else this.#serverParser = fresh;
          }
        }
      }
    }
  }

  /** @ignore Called by `ws._finish`: forget the connection and close its descriptor. */
  _detach(ws: WebSocket<T>, code: number): void {
    this.#outbox.discard(ws);
    this.#release(ws);
    closeFd(ws.fd);
    ws.fd = -1;
    const byCode = this.stats.closedByCode;
    byCode[code] = (byCode[code] ?? 0) + 1;
  }

  /** @ignore A deadline or timer was added or moved from outside the loop. */
  _timersChanged(): void {
    // The sleeping wait's timeout may now be too long: wake it to compute a new one.
    if (this.#parked) this.#poller.wake();
  }

  /** @ignore Registers a non-WebSocket descriptor (listener, pending handshake). */
  _addTarget(target: PollTarget, interest: number): void {
    this.#table[target.fd] = target;
    this.#targets.add(target);
    this.#poller.register(target.fd, TOKEN_OTHER, interest);
    this._timersChanged();
  }

  /** @ignore */
  _modifyTarget(target: PollTarget, interest: number): void {
    this.#poller.modify(target.fd, TOKEN_OTHER, interest);
  }

  /** @ignore Unregisters a target; the caller closes its descriptor afterwards. */
  _removeTarget(target: PollTarget): void {
    if (this.#table[target.fd] === target) this.#table[target.fd] = undefined;
    this.#targets.delete(target);
    this.#poller.unregister(target.fd);
  }

  // ------------------------------------------------------------------ sending

  /** @ignore Encodes and queues a data message for one connection. */
  _sendData(ws: WebSocket<T>, data: string | Uint8Array, binary: boolean): boolean {
    const opcode = binary ? 0x2 : 0x1;
    if (ws._role === "client") {
      const frame = encodeFrame(opcode, data, { mask: true });
      if (!this.#admit(ws, frame.length)) return false;
      this.#outbox.pushChunk(ws, frame);
    } else {
      const at = this.#encode(opcode, data);
      if (at >= 0) {
        if (!this.#admit(ws, this.#frameEnd - at)) return false;
        this.#outbox.pushRange(ws, at, this.#frameEnd);
      } else {
        // The queue takes its own reference to the pooled frame; ours ends here.
        const big = this.#bigFrame!;
        this.#bigFrame = null;
        const admitted = this.#admit(ws, big.length);
        if (admitted) this.#outbox.pushChunk(ws, big);
        framePool.release(big);
        if (!admitted) return false;
      }
    }
    this.stats.messagesOut++;
    this.#scheduleFlush();
    return true;
  }

  /** @ignore Queues a ping or pong (control frames bypass the backpressure limit). */
  _sendControl(ws: WebSocket<T>, opcode: 0x9 | 0xa, payload: string | Uint8Array): boolean {
    const frame = encodeControlFrame(opcode, payload, ws._role === "client");
    // Pings and pongs obey the backpressure limit too: a peer that pings without reading
    // would otherwise queue pongs without bound.
    if (!this.#admit(ws, frame.length)) return false;
    this.#pushSmall(ws, frame);
    this.#scheduleFlush();
    return true;
  }

  /** @ignore Queues a close frame and starts the closing handshake timer. */
  _sendClose(ws: WebSocket<T>, code: number, reason: string): void {
    const frame = code === 0
      ? encodeCloseFrame(undefined, undefined, ws._role === "client")
      : encodeCloseFrame(code, reason, ws._role === "client");
    this.#pushSmall(ws, frame);
    ws._closeSent = true;
    if (ws._state === WebSocket.OPEN) ws._state = WebSocket.CLOSING;
    ws._deadline = this._now() + this.#closeTimeout;
    this.#closing.add(ws);
    this._timersChanged();
    this.#scheduleFlush();
  }

  #pushSmall(ws: WebSocket<T>, frame: Uint8Array): void {
    const at = this.#outbox.alloc(frame.length);
    if (at < 0) {
      this.#outbox.pushChunk(ws, frame);
      return;
    }
    this.#outbox.arena.set(frame, at);
    this.#outbox.pushRange(ws, at, at + frame.length);
  }

  /** End of the last frame written by {@link WebSocketManager.#encode}. */
  #frameEnd = 0;
  /** A frame too large for the arena, from the last {@link WebSocketManager.#encode}. */
  #bigFrame: Uint8Array | null = null;

  /**
   * Encodes an unmasked frame once: into the arena (returns its offset; `#frameEnd` is its
   * end) or, when large, into its own buffer (returns -1; see `#bigFrame`).
   */
  #encode(opcode: number, data: string | Uint8Array): number {
    const outbox = this.#outbox;
    if (typeof data !== "string") {
      const len = data.length;
      const h = frameHeaderLength(len, false);
      const at = outbox.alloc(h + len);
      if (at < 0) {
        const frame = framePool.acquire(h + len);
        writeFrameHeader(frame, 0, opcode, true, len, null);
        frame.set(data, h);
        this.#bigFrame = frame;
        return -1;
      }
      const arena = outbox.arena;
      writeFrameHeader(arena, at, opcode, true, len, null);
      arena.set(data, at + h);
      this.#frameEnd = at + h + len;
      return at;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: encode straight into the arena after
    // room for the largest header the bound allows, then close any gap.
    const bound = data.length * 3;
    const maxH = frameHeaderLength(bound, false);
    const at = outbox.alloc(maxH + bound);
    if (at < 0) {
      const bytes = utf8.encode(data);
      const h = frameHeaderLength(bytes.length, false);
      const frame = framePool.acquire(h + bytes.length);
      writeFrameHeader(frame, 0, opcode, true, bytes.length, null);
      frame.set(bytes, h);
      this.#bigFrame = frame;
      return -1;
    }
    const arena = outbox.arena;
    const written = data.length === 0
      ? 0
      : utf8.encodeInto(data, arena.subarray(at + maxH, at + maxH + bound)).written;
    const h = frameHeaderLength(written, false);
    // Frames must stay back to back in the arena so that one connection's frames of a tick
    // form one range (one send); moving a short payload a few bytes costs less than a gap.
    if (h !== maxH) arena.copyWithin(at + h, at + maxH, at + maxH + written);
    writeFrameHeader(arena, at, opcode, true, written, null);
    this.#frameEnd = at + h + written;
    // Return unused reservation to the arena when this was the last allocation.
    if (outbox.used === at + maxH + bound) outbox.used = this.#frameEnd;
    return at;
  }

  /**
   * Slow consumers found while a broadcast iterates its targets: dropping one closes it,
   * which unlinks it from `#conns` (swap with the last) and runs `closed()`, so it waits
   * until the iteration is over.
   */
  readonly #slow: WebSocket<T>[] = [];
  #deferDrops = false;

  /** Applies the backpressure policy; true when `len` more bytes may be queued. */
  #admit(ws: WebSocket<T>, len: number): boolean {
    const buffered = ws._qBytes + ws._re - ws._rs;
    if (buffered === 0 || buffered + len <= this.#limit) return true;
    switch (this.#policy) {
      case "buffer":
        return true;
      case "drop":
        ws._dropped++;
        this.stats.droppedMessages++;
        return false;
      default:
        if (this.#deferDrops) this.#slow.push(ws);
        else this.#dropSlowConsumer(ws);
        return false;
    }
  }

  #dropSlowConsumer(ws: WebSocket<T>): void {
    this.stats.slowConsumers++;
    ws._failReason = "slow consumer: backpressure limit exceeded";
    if (ws._partial || ws._closeSent) {
      ws.terminate();
      return;
    }
    this.#outbox.discard(ws);
    const frame = encodeCloseFrame(1008, "backpressure limit exceeded", ws._role === "client");
    const n = sendFrom(ws.fd, frame, frame.length);
    if (n !== frame.length) {
      ws.terminate();
      return;
    }
    ws._closeSent = true;
    ws._state = WebSocket.CLOSING;
    ws._deadline = this._now() + this.#closeTimeout;
    this.#closing.add(ws);
    this._timersChanged();
  }

  /**
   * Sends a message to every open connection (except `except`): encoded once, written to
   * each connection with the rest of what it gets in this loop tick.
   *
   * @returns how many connections it was queued for.
   */
  broadcast(
    data: string | ArrayBufferView | ArrayBuffer,
    options: { binary?: boolean; except?: WebSocket<T> | null } = {},
  ): number {
    return this.#deliver(this.#conns, data, options.binary, options.except ?? null);
  }

  /** Subscribes `ws` to `topic`. */
  subscribe(ws: WebSocket<T>, topic: string): void {
    if (!this.has(ws)) return;
    let set = this.#topics.get(topic);
    if (set === undefined) {
      set = new Set();
      this.#topics.set(topic, set);
    }
    set.add(ws);
    (ws._topics ??= new Set()).add(topic);
  }

  /** Unsubscribes `ws` from `topic`. */
  unsubscribe(ws: WebSocket<T>, topic: string): void {
    const set = this.#topics.get(topic);
    if (set === undefined) return;
    set.delete(ws);
    if (set.size === 0) this.#topics.delete(topic);
    ws._topics?.delete(topic);
  }

  /** Number of subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** The topics with at least one subscriber. */
  get topics(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * Sends a message to every subscriber of `topic` (except `except`), encoded once.
   *
   * @returns how many connections it was queued for.
   */
  publish(
    topic: string,
    data: string | ArrayBufferView | ArrayBuffer,
    options: { binary?: boolean; except?: WebSocket<T> | null } = {},
  ): number {
    const set = this.#topics.get(topic);
    if (set === undefined) return 0;
    return this.#deliver(set, data, options.binary, options.except ?? null);
  }

  #deliver(
    targets: Iterable<WebSocket<T>>,
    raw: string | ArrayBufferView | ArrayBuffer,
    binary: boolean | undefined,
    except: WebSocket<T> | null,
  ): number {
    let data: string | Uint8Array;
    let isBinary: boolean;
    if (typeof raw === "string") {
      isBinary = binary === true;
      data = isBinary ? utf8.encode(raw) : raw;
    } else {
      isBinary = binary !== false;
      data = raw instanceof Uint8Array
        ? raw
        : ArrayBuffer.isView(raw)
        ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
        : new Uint8Array(raw);
    }
    const opcode = isBinary ? 0x2 : 0x1;
    const at = this.#encode(opcode, data);
    const end = this.#frameEnd;
    const big = at < 0 ? this.#bigFrame : null;
    this.#bigFrame = null;
    const len = at < 0 ? big!.length : end - at;
    const outbox = this.#outbox;
    let count = 0;
    let viaSendData = 0;
    const nested = this.#deferDrops;
    this.#deferDrops = true;
    try {
      for (const ws of targets) {
        if (ws === except || ws._state !== WebSocket.OPEN) continue;
        if (ws._role === "client") {
          if (this._sendData(ws, data, isBinary)) {
            count++;
            viaSendData++;
          }
          continue;
        }
        if (!this.#admit(ws, len)) continue;
        if (big === null) outbox.pushRange(ws, at, end);
        else outbox.pushChunk(ws, big);
        count++;
      }
    } finally {
      this.#deferDrops = nested;
      // Every queue that took the pooled frame holds its own reference; ours ends here.
      if (big !== null) framePool.release(big);
    }
    // _sendData counted its own messages.
    this.stats.messagesOut += count - viaSendData;
    if (!nested && this.#slow.length > 0) {
      for (const ws of this.#slow.splice(0)) {
        if (ws._state === WebSocket.OPEN) this.#dropSlowConsumer(ws);
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
    if (this.#closing.size > 0) this.#checkClosing();
  }

  /** Finishes connections whose closing handshake is done and whose close frame went out. */
  #checkClosing(): void {
    for (const ws of this.#closing) {
      if (ws._closeWhenFlushed && ws._qBytes + ws._re - ws._rs === 0) this._closeIfFlushed(ws);
    }
  }

  /** @ignore Closes `ws` if its closing handshake is complete and nothing is left to write. */
  _closeIfFlushed(ws: WebSocket<T>): void {
    if (!ws._closeWhenFlushed || ws._state === WebSocket.CLOSED) return;
    if (ws._qBytes + ws._re - ws._rs !== 0) {
      this.#closing.add(ws);
      this._timersChanged();
      return;
    }
    if (!ws._closeReceived) {
      // We failed the connection: no close frame came, so the code is 1006.
      ws._finish(1006, ws._failReason);
      return;
    }
    if (ws._role === "client") {
      // RFC 6455 §7.1.1: the client waits for the server to close TCP (EOF in once()),
      // within the close timeout.
      ws._deadline = Math.min(ws._deadline || Infinity, this._now() + this.#closeTimeout);
      this.#closing.add(ws);
      this._timersChanged();
      return;
    }
    ws._finish(ws._peerCode, ws._peerReason);
  }

  #setWriteInterest(ws: WebSocket<T>, on: boolean): void {
    if (ws.fd < 0 || this.#table[ws.fd] !== ws) return;
    this.#poller.modify(
      ws.fd,
      TOKEN_WS,
      on ? Interest.READABLE | Interest.WRITABLE : Interest.READABLE,
    );
  }

  #onDrained(ws: WebSocket<T>): void {
    this.#setWriteInterest(ws, false);
    if (ws._closeWhenFlushed) {
      this._closeIfFlushed(ws);
      return;
    }
    if (ws._state !== WebSocket.OPEN) return;
    try {
      ws.drained();
    } catch (err) {
      this._reportError(err, ws);
    }
  }

  /** @ignore Reports an exception thrown by application code. */
  _reportError(err: unknown, ws: WebSocket<T> | null): void {
    this.stats.callbackErrors++;
    let handled = false;
    const hook = (ws?._ownHandlers ?? this._handlers).error;
    if (hook !== undefined) {
      try {
        hook(ws, err);
        handled = true;
      } catch (inner) {
        console.error("fdws: the error handler threw:", inner);
      }
    }
    if (ws !== null && ws._emitError(err)) handled = true;
    if (!handled) console.error("fdws: a WebSocket callback threw:", err);
  }

  // ------------------------------------------------------------------ loop

  /** Starts the loop as a task on the event loop; resolves nothing (see {@link WebSocketManager.join}). */
  start(): void {
    if (this.#running) return;
    if (this.#stopping) {
      throw new ManagerError("MANAGER_STOPPED", "a stopped manager cannot restart");
    }
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Ends the loop (wakes a pending wait); connections still open are terminated by `join()`. */
  stop(): void {
    if (this.#stopping) return;
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
   */
  closeAll(code = 1001, reason = "", timeout: number = this.#closeTimeout): Promise<void> {
    const done = Promise.withResolvers<void>();
    for (const ws of this.#conns.slice()) {
      if (ws._state === WebSocket.OPEN) ws.close(code, reason);
    }
    this.#flush();
    const deadline = performance.now() + timeout;
    const check = (): void => {
      if (this.#conns.length === 0) {
        done.resolve();
        return;
      }
      if (performance.now() >= deadline || !this.#running) {
        for (const ws of this.#conns.slice()) {
          ws._failReason = "close timeout";
          ws.terminate();
        }
        done.resolve();
        return;
      }
      setTimeout(check, 10);
    };
    check();
    return done.promise;
  }

  async #run(): Promise<void> {
    const poller = this.#poller;
    const events = this.#events;
    const table = this.#table;
    let lastYield = performance.now();
    try {
      while (!this.#stopping) {
        let now = performance.now();
        if (now - lastYield >= YIELD_MS) {
          await this._macrotasks.turn();
          if (this.#stopping) break;
          lastYield = now = performance.now();
        }
        let n = poller.pollNow(events);
        if (n === 0) {
          this.#parked = true;
          try {
            n = await poller.wait(events, this.#waitTimeout());
          } finally {
            this.#parked = false;
          }
          if (this.#stopping) break;
          lastYield = now = performance.now();
        }
        // Never backwards: _now() may have advanced it between ticks.
        this._clock = Math.max(this._clock, Math.floor(now - this.#epoch));
        this.#inTick = true;
        for (let i = 0; i < n; i++) {
          const fd = events.fds[i];
          const entry = table[fd];
          if (entry === undefined) continue;
          const ready = events.ready[i];
          try {
            if (entry instanceof WebSocket) this.#onSocketReady(entry, ready);
            else entry.onReady(ready);
          } catch (err) {
            this._reportError(err, null);
          }
        }
        this.#flush();
        this.#endTick();
        if (this._clock >= this.#nextHousekeeping) this.#housekeeping();
      }
    } finally {
      this.#inTick = false;
      this.#teardown();
    }
  }

  #onSocketReady(ws: WebSocket<T>, ready: number): void {
    if (ws._m !== (this as WebSocketManager) || ws._state === WebSocket.CLOSED) return;
    if (ready & Ready.WRITABLE) this.#outbox.flushConnection(ws);
    if (ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR)) {
      if (!ws.once() && (ws._state as number) !== WebSocket.CLOSED) ws.terminate();
    }
  }

  /**
   * How long the loop may sleep: until the next close deadline, target timer or heartbeat
   * is due, or without limit. An idle server then does not wake four times a second,
   * which also lets V8 see it idle and give memory back sooner.
   */
  #waitTimeout(): number {
    let next = Infinity;
    if (this.#closing.size > 0) {
      next = this.#nextHousekeeping;
    } else {
      const ping = this.#pingInterval;
      const idle = this.#idleTimeout;
      const period = ping > 0 ? Math.min(ping, idle > 0 ? idle : ping) : idle;
      if (period > 0 && this.#conns.length > 0) {
        next = this.#lastHeartbeat + Math.min(period, 1000);
      }
      if (this.#targets.size > 64) {
        next = Math.min(next, this.#nextHousekeeping);
      } else {
        for (const t of this.#targets) {
          if (t.onTimer === undefined) continue;
          next = Math.min(next, t.nextTimer?.() ?? this.#nextHousekeeping);
        }
      }
    }
    if (next === Infinity) return -1;
    // Housekeeping runs at most every HOUSEKEEPING_MS: never wake before it may.
    return Math.max(1, Math.max(next, this.#nextHousekeeping) - this._clock);
  }

  #housekeeping(): void {
    const now = this._clock;
    this.#nextHousekeeping = now + HOUSEKEEPING_MS;
    for (const ws of this.#closing) {
      if (ws._state === WebSocket.CLOSED) {
        this.#closing.delete(ws);
      } else if (ws._deadline !== 0 && now >= ws._deadline) {
        ws._failReason ||= "close timeout";
        ws.terminate();
      }
    }
    for (const t of this.#targets) {
      if (t.onTimer !== undefined) {
        try {
          t.onTimer(now);
        } catch (err) {
          this._reportError(err, null);
        }
      }
    }
    const ping = this.#pingInterval;
    const idle = this.#idleTimeout;
    const period = ping > 0 ? Math.min(ping, idle > 0 ? idle : ping) : idle;
    if (period <= 0 || now - this.#lastHeartbeat < Math.min(period, 1000)) return;
    this.#lastHeartbeat = now;
    this.#inTick = true;
    for (const ws of this.#conns.slice()) {
      if (ws._state !== WebSocket.OPEN) continue;
      const quiet = now - ws._lastSeen;
      if (idle > 0 && quiet >= idle) {
        this.stats.idleTimeouts++;
        ws._failReason = "idle timeout";
        ws.terminate();
      } else if (ping > 0 && quiet >= ping && !ws._pingOutstanding) {
        ws._pingOutstanding = true;
        this._sendControl(ws, 0x9, EMPTY);
      }
    }
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
    for (const ws of this.#conns.slice()) {
      ws._failReason ||= "manager stopped";
      ws.terminate();
    }
    for (const t of [...this.#targets]) {
      this._removeTarget(t);
      t.close();
    }
    if (this.#ownsPoller) this.#poller.close();
    this._macrotasks.close();
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The WebSocket object the application sees, server or client side.
 *
 * Its lifecycle follows ws4py (`once()`, `send()`, `close()`, `terminate()` and overridable
 * hooks `opened()`, `receivedMessage()`, `ponged()`, `closed()`); the same moments go to
 * handler functions (Bun style); it is an `EventTarget` dispatching WHATWG events (`open`,
 * `message`, `error`, `close`, in the WHATWG order) so browser-style code works; and its
 * messages are an async iterable with backpressure. The engine's state of the connection
 * lives in its {@link Connection}; this object holds the application's data and listeners.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import type { NetAddr } from "../net/tcp.ts";
import { assertSendableCloseCode } from "../protocol/frame/close_codes.ts";
import { OPCODE_PING, OPCODE_PONG } from "../protocol/frame/opcodes.ts";
import {
  CLOSED,
  CLOSING,
  CONNECTING,
  type Connection,
  OPEN,
  type ReadyState,
  type Role,
} from "./connection.ts";
import { SendStatus } from "./host.ts";
import { MessageQueue } from "./message_queue.ts";
import { bufferedBytes } from "./outbox.ts";
import type { ManagerStats } from "./stats.ts";

export { SendStatus };

/** How binary messages are delivered: `Uint8Array` (default) or `ArrayBuffer`. */
export type BinaryType = "uint8array" | "arraybuffer";

/** A received message as hooks, handlers, events and iteration see it. */
export type Message = string | Uint8Array | ArrayBuffer;

/**
 * An operation that the connection's state does not allow, e.g. `send()` on a client that
 * is still connecting (`code` `"INVALID_STATE"`).
 *
 * @example
 * ```ts
 * import { InvalidStateError } from "./websocket.ts";
 * const err = new InvalidStateError("still connecting");
 * console.log(err.code); // "INVALID_STATE"
 * ```
 */
export class InvalidStateError extends FdwsError {
  /**
   * Creates the error.
   * @param message Human-readable description.
   */
  constructor(message: string) {
    super("INVALID_STATE", message);
    this.name = "InvalidStateError";
  }
}

/**
 * Functions called at the moments of a connection's life. They are the functional
 * alternative to overriding the hooks of {@link WebSocket}.
 *
 * @typeParam T Type of `ws.data`.
 *
 * @example Echo, and count what closes
 * ```ts
 * import type { WebSocketHandlers } from "./websocket.ts";
 *
 * const closes: number[] = [];
 * const handlers: WebSocketHandlers = {
 *   message: (ws, data) => void ws.send(data),
 *   close: (_ws, code) => void closes.push(code),
 * };
 * console.log(typeof handlers.message); // "function"
 * ```
 */
export interface WebSocketHandlers<T = unknown> {
  /** The connection is open. */
  open?(ws: WebSocket<T>): void;
  /** A complete message: a string for text, bytes for binary (see `binaryType`). */
  message?(ws: WebSocket<T>, data: Message): void;
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

/**
 * The manager of a connection as `ws.manager` shows it. `WebSocketManager` implements it;
 * it is declared here so that this module does not depend on the manager's.
 *
 * @typeParam T Type of `ws.data`.
 *
 * @example Broadcast from a handler
 * ```ts
 * import type { WebSocket } from "./websocket.ts";
 *
 * function relay(ws: WebSocket, data: string): void {
 *   ws.manager?.broadcast(data, { except: ws });
 * }
 * console.log(typeof relay); // "function"
 * ```
 */
export interface WebSocketHost<T = unknown> {
  /** True between `start()` and the end of the loop. */
  readonly running: boolean;
  /** Number of connections (open or closing). */
  readonly size: number;
  /** Live counters. */
  readonly stats: ManagerStats;
  /** The handler functions of the manager's connections. */
  readonly handlers: WebSocketHandlers<T>;
  /** True when `ws` is one of this manager's connections. */
  has(ws: WebSocket<T>): boolean;
  /** Sends a message to every open connection (except `options.except`), encoded once. */
  broadcast(
    data: string | ArrayBufferView | ArrayBuffer,
    options?: { binary?: boolean; except?: WebSocket<T> | null; compress?: boolean },
  ): number;
  /** Sends a message to every subscriber of `topic` (except `options.except`). */
  publish(
    topic: string,
    data: string | ArrayBufferView | ArrayBuffer,
    options?: { binary?: boolean; except?: WebSocket<T> | null; compress?: boolean },
  ): number;
  /** Number of subscribers of `topic`. */
  subscriberCount(topic: string): number;
  /** Removes `ws` without closing it (see `WebSocketManager.remove`). */
  remove(ws: WebSocket<T>): boolean;
  /** Moves `ws` to this manager (see `WebSocketManager.adopt`). */
  adopt(ws: WebSocket<T>): void;
}

/** Options of {@link WebSocket.send}. */
export interface SendOptions {
  /** For a string: send its UTF-8 bytes as a binary message. For bytes: default true. */
  binary?: boolean;
  /**
   * Compress with permessage-deflate when it was negotiated. Default true (messages under
   * the manager's threshold are never compressed).
   */
  compress?: boolean;
}

/** A listener as registered with the `EventTarget`: wrapped so that a throw is reported. */
interface Registered {
  type: string;
  listener: EventListenerOrEventListenerObject;
  capture: boolean;
  wrapper: EventListener;
}

/** The events this object dispatches itself. */
type OwnEvent = "open" | "message" | "error" | "close";

function isOwnEvent(type: string): type is OwnEvent {
  return type === "message" || type === "close" || type === "open" || type === "error";
}

/**
 * What most connections never need: listener bookkeeping, `on*` handlers, own handler
 * functions, a non-default `binaryType`, the message iterator and the parsed handshake
 * headers; allocated on first use.
 */
class LocalState<T> {
  registered: Registered[] = [];
  /** Listeners per event type: events nobody listens to are not even created. */
  counts: Record<OwnEvent, number> = { open: 0, message: 0, error: 0, close: 0 };
  /** `on*` handler values; each one's listener is registered when first set (WHATWG). */
  attributes: Record<OwnEvent, ((ev: Event) => void) | null> = {
    open: null,
    message: null,
    error: null,
    close: null,
  };
  /** Which attributes have their listener registered. */
  attached: Record<OwnEvent, boolean> = { open: false, message: false, error: false, close: false };
  handlers: WebSocketHandlers<T> | null = null;
  arrayBuffer = false;
  queue: MessageQueue<Message> | null = null;
  headers: Headers | null = null;
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

// Module-internal access to private state for the engine (the server, the client, the
// manager link a WebSocket to its connection through these, never through fields).
let bind: <T>(ws: WebSocket<T>, conn: Connection<WebSocket<T>>) => void;
let connOf: <T>(ws: WebSocket<T>) => Connection<WebSocket<T>> | null;
let ownHandlers: <T>(ws: WebSocket<T>, handlers: WebSocketHandlers<T>) => void;
let dispatchError: <T>(ws: WebSocket<T>, error: unknown) => boolean;

/**
 * A WebSocket connection managed by a `WebSocketManager`.
 *
 * Subclass it and override the hooks (ws4py style), give the manager or server handler
 * functions, add event listeners (WHATWG style), or iterate its messages with
 * `for await`: all see the same moments. A subclass hook that does not call `super`
 * replaces the handlers, events and iteration of that moment.
 *
 * @typeParam T Type of the per-connection user data in {@link WebSocket.data}.
 *
 * @example A ws4py-style subclass
 * ```ts
 * import { WebSocket } from "./websocket.ts";
 *
 * class Echo extends WebSocket {
 *   override receivedMessage(data: string | Uint8Array): void {
 *     this.send(data);
 *   }
 * }
 * console.log(new Echo().readyState); // 0 until a server or client opens it
 * ```
 *
 * @example Messages as an async iterable
 * ```ts
 * import type { WebSocket } from "./websocket.ts";
 *
 * async function echo(ws: WebSocket): Promise<void> {
 *   // Reading pauses while the loop body is slower than the peer.
 *   for await (const message of ws) ws.send(message);
 * }
 * console.log(typeof echo); // "function"
 * ```
 */
// Structurally a ConnectionUser (its hooks); not declared with `implements`, which would
// put that engine interface in the public API.
export class WebSocket<T = unknown> extends EventTarget {
  /** The connection is being opened (client side, before the handshake completed). */
  static readonly CONNECTING: 0 = CONNECTING;
  /** Open: messages flow both ways. */
  static readonly OPEN: 1 = OPEN;
  /** A close frame was sent or received; the closing handshake is under way. */
  static readonly CLOSING: 2 = CLOSING;
  /** Closed; the descriptor is released. */
  static readonly CLOSED: 3 = CLOSED;

  static {
    bind = (ws, conn) => {
      ws.#conn = conn;
    };
    connOf = (ws) => ws.#conn;
    ownHandlers = (ws, handlers) => {
      ws.#state().handlers = handlers;
    };
    dispatchError = (ws, error) => ws.#dispatchError(error);
  }

  /** Arbitrary per-connection data of the application. */
  data: T = undefined as T;

  #conn: Connection<WebSocket<T>> | null = null;
  #local: LocalState<T> | null = null;

  #state(): LocalState<T> {
    return this.#local ??= new LocalState<T>();
  }

  /** `readyState` of a connecting socket. */
  get CONNECTING(): 0 {
    return CONNECTING;
  }
  /** `readyState` of an open socket. */
  get OPEN(): 1 {
    return OPEN;
  }
  /** `readyState` of a closing socket. */
  get CLOSING(): 2 {
    return CLOSING;
  }
  /** `readyState` of a closed socket. */
  get CLOSED(): 3 {
    return CLOSED;
  }

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState(): ReadyState {
    return this.#conn?.state ?? CONNECTING;
  }

  /** `"server"` for accepted connections, `"client"` for ones opened with `connect()`. */
  get role(): Role {
    return this.#conn?.role ?? "server";
  }

  /** How binary messages are delivered to hooks, handlers, events and iteration. */
  get binaryType(): BinaryType {
    return this.#local?.arrayBuffer ? "arraybuffer" : "uint8array";
  }
  /** Sets how binary messages are delivered. */
  set binaryType(type: BinaryType) {
    if (type === "arraybuffer" || this.#local !== null) {
      this.#state().arrayBuffer = type === "arraybuffer";
    }
  }

  /** The subprotocol chosen in the handshake, or `""`. */
  get protocol(): string {
    return this.#conn?.protocol ?? "";
  }

  /** The extensions negotiated in the handshake (as in `Sec-WebSocket-Extensions`), or `""`. */
  get extensions(): string {
    return this.#conn?.extensions ?? "";
  }

  /** Server side: the request target (`/chat?room=1`). Client side: the URL connected to. */
  get url(): string {
    return this.#conn?.url ?? "";
  }

  /**
   * The headers of the opening handshake the peer sent: the upgrade request's on the
   * server side, the 101 response's on the client side.
   */
  get headers(): Headers {
    const local = this.#state();
    if (local.headers === null) {
      const headers = new Headers();
      const text = this.#conn?.headerText ?? "";
      let at = 0;
      while (at < text.length) {
        const end = text.indexOf("\n", at);
        const line = text.slice(at, end < 0 ? text.length : end);
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon), line.slice(colon + 1));
        at = end < 0 ? text.length : end + 1;
      }
      local.headers = headers;
    }
    return local.headers;
  }

  /** Address of the peer, or null when unknown. */
  get remoteAddress(): NetAddr | null {
    const conn = this.#conn;
    if (conn === null || conn.remoteHost === "") return null;
    return { transport: "tcp", hostname: conn.remoteHost, port: conn.remotePort };
  }

  /** Bytes queued by `send()` and friends that the kernel has not accepted yet. */
  get bufferedAmount(): number {
    const conn = this.#conn;
    return conn === null ? 0 : bufferedBytes(conn);
  }

  /** Messages not queued because of the `"drop"` backpressure policy. */
  get droppedMessages(): number {
    return this.#conn?.dropped ?? 0;
  }

  /** The manager running this connection, or null once it is closed or removed. */
  get manager(): WebSocketHost<T> | null {
    // A connection's host belongs to a WebSocketManager, which implements WebSocketHost.
    return (this.#conn?.host?.owner ?? null) as WebSocketHost<T> | null;
  }

  /** Topics this connection is subscribed to. */
  get topics(): string[] {
    const topics = this.#conn?.topics ?? null;
    return topics === null ? [] : [...topics];
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends a message: text for a string, binary for bytes (see {@link SendOptions}). The
   * data is copied (or encoded) at once; later changes to it do not matter.
   *
   * @param data The message.
   * @param options `true`/`false` is short for `{ binary }`.
   * @returns the size of the frame queued (> 0); or {@link SendStatus}`.BACKPRESSURE` (-1:
   * queued, but the unsent bytes are past the backpressure limit), `.DROPPED` (0: the
   * backpressure policy refused it, see {@link WebSocket.droppedMessages}) or `.CLOSED`
   * (-2: the connection is closing, closed or detached).
   * @throws {InvalidStateError} while still connecting.
   */
  send(data: Message | ArrayBufferView, options?: boolean | SendOptions): number {
    const conn = this.#conn;
    if (conn === null || conn.state === CONNECTING) {
      throw new InvalidStateError("the WebSocket is connecting");
    }
    const binary = typeof options === "boolean" ? options : options?.binary;
    const compress = typeof options === "object" ? options.compress !== false : true;
    if (typeof data === "string") {
      return binary === true
        ? conn.send(utf8.encode(data), true, compress)
        : conn.send(data, false, compress);
    }
    return conn.send(toBytes(data), binary !== false, compress);
  }

  /**
   * Sends a ping (at most 125 bytes of payload). The peer's pong arrives in
   * {@link WebSocket.ponged}.
   */
  ping(payload: string | Uint8Array = EMPTY): boolean {
    return this.#conn?.sendControl(OPCODE_PING, payload) ?? false;
  }

  /** Sends an unsolicited pong (a one-way heartbeat). */
  pong(payload: string | Uint8Array = EMPTY): boolean {
    return this.#conn?.sendControl(OPCODE_PONG, payload) ?? false;
  }

  /**
   * Starts the closing handshake: sends a close frame and waits for the peer's (the
   * manager's `closeTimeout` then terminates). Does nothing when already closing.
   *
   * @param code 1000, 1001, 1002, 1003, 1007-1014 or 3000-4999.
   * @param reason At most 123 bytes of UTF-8.
   * @throws {CloseCodeError} for a code or reason that may not be sent.
   * @throws {InvalidStateError} when detached from its manager (`remove()`, not yet adopted).
   */
  close(code = 1000, reason = ""): void {
    const conn = this.#conn;
    const state = conn?.state ?? CONNECTING;
    if (state === CLOSING || state === CLOSED) return;
    assertSendableCloseCode(code);
    if (conn === null) return;
    if (state === CONNECTING) {
      conn.failReason = "closed while connecting";
      conn.terminate();
      return;
    }
    if (!conn.close(code, reason)) {
      throw new InvalidStateError("the WebSocket is not attached to a manager; adopt() it first");
    }
  }

  /** Drops the connection now, without a close frame. Idempotent. */
  terminate(): void {
    this.#conn?.terminate();
  }

  /** The async iterator over messages (see {@link WebSocket[Symbol.asyncIterator]}). */
  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    const local = this.#state();
    if (local.queue !== null && !local.queue.done) {
      throw new InvalidStateError("the messages of a WebSocket have one iterator at a time");
    }
    const conn = this.#conn;
    const queue = new MessageQueue<Message>({
      pause: () => conn?.host?.pauseReads(conn),
      resume: () => conn?.host?.resumeReads(conn),
    });
    local.queue = queue;
    if (conn === null || conn.state === CLOSED) queue.end();
    return queue;
  }

  // ---------------------------------------------------------------- topics

  /** Subscribes this connection to `topic` (see `WebSocketManager.publish`). */
  subscribe(topic: string): void {
    const conn = this.#conn;
    conn?.host?.subscribe(conn, topic);
  }

  /** Unsubscribes this connection from `topic`. */
  unsubscribe(topic: string): void {
    const conn = this.#conn;
    conn?.host?.unsubscribe(conn, topic);
  }

  /** True when subscribed to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.#conn?.topics?.has(topic) ?? false;
  }

  /**
   * Publishes to every subscriber of `topic`, except this connection unless the manager's
   * `publishToSelf` is set; with a backplane also to subscribers elsewhere.
   *
   * @param options `true`/`false` is short for `{ binary }` (see {@link SendOptions}).
   * @returns how many connections of this manager it was queued for.
   */
  publish(
    topic: string,
    data: Message | ArrayBufferView,
    options?: boolean | SendOptions,
  ): number {
    const conn = this.#conn;
    const host = conn?.host ?? null;
    if (host === null) return 0;
    const binary = typeof options === "boolean" ? options : options?.binary;
    const compress = typeof options === "object" ? options.compress !== false : true;
    if (typeof data === "string") {
      return binary === true
        ? host.publish(topic, utf8.encode(data), true, conn, compress)
        : host.publish(topic, data, false, conn, compress);
    }
    return host.publish(topic, toBytes(data), binary !== false, conn, compress);
  }

  // ---------------------------------------------------------------- ws4py lifecycle

  /**
   * Reads what is available on the socket, parses it and dispatches what it completes.
   * The manager does this when the descriptor is readable.
   *
   * @returns false once the connection is finished.
   */
  once(): boolean {
    return this.#conn?.read() ?? false;
  }

  /** Hook: the connection is open. Default: the `open` handler, then the `open` event. */
  opened(): void {
    this.#handlers()?.open?.(this);
    if (this.#listens("open")) this.dispatchEvent(new Event("open"));
  }

  /**
   * Hook: a complete message arrived. Default: the `message` handler, the `message` event,
   * then the async iterator. `borrowed` (a manager with `messageBuffers: "borrowed"`): the
   * bytes are a view the manager reuses once this returns; the iterator gets a copy.
   */
  receivedMessage(data: string | Uint8Array, borrowed = false): void {
    const local = this.#local;
    const out = typeof data === "string" || local === null || !local.arrayBuffer
      ? data
      : exactBuffer(data);
    this.#handlers()?.message?.(this, out);
    if (local === null) return;
    if (local.counts.message > 0) this.dispatchEvent(new MessageEvent("message", { data: out }));
    const queue = local.queue;
    if (queue === null) return;
    // A borrowed message is copied for the queue, unless the ArrayBuffer view copied it already.
    const lent = borrowed && (out === data || out === (data as Uint8Array).buffer);
    const kept = lent ? (out as Uint8Array | ArrayBuffer).slice(0) : out;
    queue.push(kept, typeof kept === "string" ? kept.length : kept.byteLength);
  }

  /** Hook: a pong arrived. Default: the `pong` handler. */
  ponged(payload: Uint8Array): void {
    this.#handlers()?.pong?.(this, payload);
  }

  /** Hook: a ping arrived (the pong reply is already queued). Default: the `ping` handler. */
  pinged(payload: Uint8Array): void {
    this.#handlers()?.ping?.(this, payload);
  }

  /** Hook: everything queued was written after the socket had been full. */
  drained(): void {
    this.#handlers()?.drain?.(this);
  }

  /**
   * Hook: the connection is closed; runs exactly once. `code` is the peer's close code,
   * 1005 when its close frame had none, 1006 when no close frame was received. Default:
   * the `close` handler; then, as the WHATWG WebSocket does, an `error` event when the
   * connection failed (the peer broke the protocol, went away without a closing handshake,
   * or timed out) followed by the `close` event; the async iteration ends.
   */
  closed(code: number, reason: string): void {
    this.#handlers()?.close?.(this, code, reason);
    const local = this.#local;
    if (local === null) return;
    const conn = this.#conn;
    const wasClean = conn !== null && conn.closeSent && conn.closeReceived;
    const failed = conn !== null && !wasClean && (conn.lost || conn.failReason !== "");
    if (failed && local.counts.error > 0) this.dispatchEvent(new Event("error"));
    if (local.counts.close > 0) {
      this.dispatchEvent(new CloseEvent("close", { code, reason, wasClean }));
    }
    local.queue?.end();
  }

  // ---------------------------------------------------------------- WHATWG events

  /**
   * Adds an event listener (`open`, `message`, `error`, `close`), with the `once`,
   * `signal` and `capture` options of `EventTarget`. An exception thrown by a listener is
   * reported to the `error` handler (or the console), never to `reportError`, which would
   * end the process in Deno.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    if (listener === null) return;
    const capture = typeof options === "boolean" ? options : options?.capture === true;
    const once = typeof options === "object" && options.once === true;
    const signal = typeof options === "object" ? options.signal : undefined;
    if (signal?.aborted) return;
    const local = this.#state();
    if (
      local.registered.some((r) =>
        r.type === type && r.listener === listener && r.capture === capture
      )
    ) {
      return;
    }
    // Typed by context (EventListener), not as `Event`: with `npm:` imports in the same
    // type check, Node's `Event` declarations merge into the DOM's.
    const wrapper: EventListener = (event) => {
      if (once) this.#forget(entry);
      try {
        const fn = listener as ((ev: unknown) => void) | { handleEvent(ev: unknown): void };
        if (typeof fn === "function") fn.call(this, event);
        else fn.handleEvent(event);
      } catch (err) {
        this.#listenerThrew(err, type);
      }
    };
    const entry: Registered = { type, listener, capture, wrapper };
    local.registered.push(entry);
    if (isOwnEvent(type)) local.counts[type]++;
    super.addEventListener(type, entry.wrapper, { capture, once, signal });
    signal?.addEventListener("abort", () => this.#forget(entry), { once: true });
  }

  /** Removes an event listener. */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    const local = this.#local;
    if (local === null || listener === null) return;
    const capture = typeof options === "boolean" ? options : options?.capture === true;
    const entry = local.registered.find((r) =>
      r.type === type && r.listener === listener && r.capture === capture
    );
    if (entry === undefined) return;
    super.removeEventListener(type, entry.wrapper, { capture });
    this.#forget(entry);
  }

  #forget(entry: Registered): void {
    const local = this.#local!;
    const i = local.registered.indexOf(entry);
    if (i < 0) return;
    local.registered.splice(i, 1);
    if (isOwnEvent(entry.type)) local.counts[entry.type]--;
  }

  /** `open` event handler property. */
  get onopen(): ((ev: Event) => void) | null {
    return this.#local?.attributes.open ?? null;
  }
  set onopen(fn: ((ev: Event) => void) | null) {
    this.#setAttribute("open", fn);
  }
  /** `message` event handler property. */
  get onmessage(): ((ev: MessageEvent) => void) | null {
    return (this.#local?.attributes.message ?? null) as ((ev: MessageEvent) => void) | null;
  }
  set onmessage(fn: ((ev: MessageEvent) => void) | null) {
    this.#setAttribute("message", fn as ((ev: Event) => void) | null);
  }
  /** `close` event handler property. */
  get onclose(): ((ev: CloseEvent) => void) | null {
    return (this.#local?.attributes.close ?? null) as ((ev: CloseEvent) => void) | null;
  }
  set onclose(fn: ((ev: CloseEvent) => void) | null) {
    this.#setAttribute("close", fn as ((ev: Event) => void) | null);
  }
  /** `error` event handler property. */
  get onerror(): ((ev: Event) => void) | null {
    return this.#local?.attributes.error ?? null;
  }
  set onerror(fn: ((ev: Event) => void) | null) {
    this.#setAttribute("error", fn);
  }

  /**
   * As the WHATWG event handler attributes: the first non-null value registers a listener
   * at that position in the listener order; later values (null included) reuse it.
   */
  #setAttribute(type: OwnEvent, fn: ((ev: Event) => void) | null): void {
    const local = this.#state();
    const attributes = local.attributes;
    attributes[type] = fn;
    if (fn === null || local.attached[type]) return;
    local.attached[type] = true;
    local.counts[type]++;
    const wrapper: EventListener = (event) => {
      const handler = attributes[type];
      if (handler === null) return;
      try {
        (handler as (ev: unknown) => void).call(this, event);
      } catch (err) {
        this.#listenerThrew(err, type);
      }
    };
    super.addEventListener(type, wrapper);
  }

  /** True when an event of `type` would reach a listener or handler attribute. */
  #listens(type: OwnEvent): boolean {
    return this.#local !== null && this.#local.counts[type] > 0;
  }

  /** The handlers that see this connection's moments: its own, else its manager's. */
  #handlers(): WebSocketHandlers<T> | null {
    const own = this.#local?.handlers ?? null;
    if (own !== null) return own;
    const owner = (this.#conn?.lastHost?.owner ?? null) as WebSocketHost<T> | null;
    return owner?.handlers ?? null;
  }

  /** An exception of a callback: the `error` handler, then `error` listeners. */
  #dispatchError(error: unknown): boolean {
    let handled = false;
    const hook = this.#handlers()?.error;
    if (hook !== undefined) {
      try {
        hook(this, error);
        handled = true;
      } catch (inner) {
        console.error("fdws: the error handler threw:", inner);
      }
    }
    if (!this.#listens("error")) return handled;
    const message = error instanceof Error ? error.message : String(error);
    this.dispatchEvent(new ErrorEvent("error", { error, message }));
    return true;
  }

  #listenerThrew(err: unknown, type: string): void {
    const conn = this.#conn;
    const host = conn?.lastHost ?? null;
    // An `error` listener that throws is not reported as an error again (no recursion).
    if (conn !== null && host !== null && type !== "error") host.reportError(err, conn);
    else console.error(`fdws: a WebSocket ${type} listener threw:`, err);
  }
}

/**
 * Links a WebSocket to the connection it presents (the server and the client do this
 * once, before the connection opens).
 */
export function bindConnection<T>(ws: WebSocket<T>, conn: Connection<WebSocket<T>>): void {
  bind(ws, conn);
}

/** The connection of `ws`, or null before it was opened. */
export function connectionOf<T>(ws: WebSocket<T>): Connection<WebSocket<T>> | null {
  return connOf(ws);
}

/** Gives `ws` handler functions of its own, in place of its manager's. */
export function setOwnHandlers<T>(ws: WebSocket<T>, handlers: WebSocketHandlers<T>): void {
  ownHandlers(ws, handlers);
}

/**
 * Reports an exception of a callback to `ws`'s `error` handler and listeners.
 * @returns false when nobody took it (the caller logs it).
 */
export function reportToWebSocket<T>(ws: WebSocket<T>, error: unknown): boolean {
  return dispatchError(ws, error);
}

function toBytes(data: ArrayBufferView | ArrayBuffer): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return new Uint8Array(data);
}

function exactBuffer(data: Uint8Array): ArrayBuffer {
  const buf = data.buffer as ArrayBuffer;
  return data.byteOffset === 0 && data.byteLength === buf.byteLength
    ? buf
    : buf.slice(data.byteOffset, data.byteLength + data.byteOffset);
}

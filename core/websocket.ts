/**
 * The WebSocket connection object: one per descriptor, server or client side.
 *
 * It is the only place where the protocol meets a socket. Its lifecycle follows ws4py
 * (`once()`, `send()`, `close()`, `terminate()` and overridable hooks `opened()`,
 * `receivedMessage()`, `ponged()`, `closed()`), and the same moments are dispatched as
 * WHATWG events (`open`, `message`, `close`, `error`) so browser-style code works.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { assertSendableCloseCode } from "../protocol/frame/close_codes.ts";
import type { FrameParser } from "../protocol/frame/parser.ts";
import { closeFd, type NetAddr } from "../net/tcp.ts";
import { IO_FAILED, recvInto, WOULD_BLOCK } from "../net/io.ts";
import type { WebSocketHandlers, WebSocketManager } from "./manager.ts";

/** `readyState` values, as in the WHATWG WebSocket. */
export type ReadyState = 0 | 1 | 2 | 3;

/** How binary messages are delivered: `Uint8Array` (default) or `ArrayBuffer`. */
export type BinaryType = "uint8array" | "arraybuffer";

/** Which end of the connection this object is. */
export type Role = "server" | "client";

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

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** One registered listener. */
interface ListenerEntry {
  fn: EventListenerOrEventListenerObject;
  capture: boolean;
  once: boolean;
  removed: boolean;
}

const F_CLIENT = 1;
const F_ARRAYBUFFER = 2;
const F_PARSER_PINNED = 4;
const F_DIRTY = 8;
const F_BLOCKED = 16;
const F_PARTIAL = 32;
const F_CLOSE_SENT = 64;
const F_CLOSE_RECEIVED = 128;
const F_CLOSE_WHEN_FLUSHED = 256;
const F_PING_OUTSTANDING = 512;

/** State most connections never need: allocated by the first accessor that stores into it. */
class Extras<T> {
  peerCode: number = 1005;
  peerReason: string = "";
  failReason: string = "";
  deadline: number = 0;
  topics: Set<string> | null = null;
  dropped: number = 0;
  protocol: string = "";
  events: EventState | null = null;
  lastHandlers: WebSocketHandlers<T> | null = null;
  ownHandlers: WebSocketHandlers<T> | null = null;
  lastManager: WebSocketManager | null = null;
}

/**
 * Listeners and `on*` handlers, allocated only when someone listens. Listeners are kept
 * here rather than in an `EventTarget`: an `EventTarget` reports a listener's exception
 * through `reportError`, which ends the whole process in Deno; here it goes to the
 * manager's `error` handler like any other callback's.
 */
class EventState {
  listeners: Map<string, ListenerEntry[]> = new Map();
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
}

/**
 * A WebSocket connection managed by a {@link WebSocketManager}.
 *
 * Subclass it and override the hooks (ws4py style), give the manager or server handler
 * functions, or add event listeners (WHATWG style): all three see the same moments. A
 * subclass hook that does not call `super` replaces the handlers and events of that
 * moment.
 *
 * @typeParam T Type of the per-connection user data in {@link WebSocket.data}.
 *
 * @example A ws4py-style subclass
 * ```ts ignore
 * import { serve, WebSocket } from "../../mod.ts";
 *
 * class Echo extends WebSocket {
 *   override receivedMessage(data: string | Uint8Array): void {
 *     this.send(data);
 *   }
 * }
 * serve({ port: 9001, webSocketClass: Echo });
 * ```
 */
// Structurally an `OutboxConnection` (the outbox keeps its per-connection fields here);
// not declared with `implements`, which would put that internal type in the public API.
export class WebSocket<T = unknown> {
  /** The connection is being opened (client side, before the handshake completed). */
  static readonly CONNECTING: 0 = CONNECTING;
  /** Open: messages flow both ways. */
  static readonly OPEN: 1 = OPEN;
  /** A close frame was sent or received; the closing handshake is under way. */
  static readonly CLOSING: 2 = CLOSING;
  /** Closed; the descriptor is released. */
  static readonly CLOSED: 3 = CLOSED;

  /** Arbitrary per-connection data of the application. */
  data: T = undefined as T;

  // Memory per connection is a product promise: only what every open connection needs
  // lives in fields. Booleans share one number; rarely used state sits in an object that
  // exists only once needed. Accessors (on the prototype) keep the names.

  /** @ignore Socket descriptor, -1 when not attached. */
  fd = -1;
  /** @ignore */
  _m: WebSocketManager | null = null;
  /** @ignore */
  _state: ReadyState = CONNECTING;
  /** @ignore Bits of F_* below. */
  _flags = 0;
  /** @ignore Parser kept while a frame or message is split across reads (else shared). */
  _parser: FrameParser | null = null;
  /** @ignore Outbox: arena range start. */
  _rs = 0;
  /** @ignore Outbox: arena range end. */
  _re = 0;
  /** @ignore Outbox: queued chunks. */
  _q: Uint8Array[] | null = null;
  /** @ignore Outbox: bytes of `_q[0]` already written. */
  _qHead = 0;
  /** @ignore Outbox: bytes held in `_q`. */
  _qBytes = 0;
  /** @ignore Coarse-clock time of the last byte received. */
  _lastSeen = 0;
  /** @ignore Index in the manager's connection list. */
  _index = -1;
  /** @ignore Request target (server side) or URL (client side). */
  _url = "";
  /** @ignore Peer address. */
  _remoteHost = "";
  /** @ignore Peer port. */
  _remotePort = 0;
  /** @ignore Rarely used state, allocated on first use. */
  _x: Extras<T> | null = null;

  /** @ignore */
  _extras(): Extras<T> {
    return this._x ??= new Extras<T>();
  }

  /** How binary messages are delivered to hooks, handlers and events. */
  get binaryType(): BinaryType {
    return this._flags & F_ARRAYBUFFER ? "arraybuffer" : "uint8array";
  }
  /** Sets how binary messages are delivered. */
  set binaryType(type: BinaryType) {
    this.#flag(F_ARRAYBUFFER, type === "arraybuffer");
  }

  #flag(bit: number, on: boolean): void {
    this._flags = on ? this._flags | bit : this._flags & ~bit;
  }

  /** @ignore */
  get _role(): Role {
    return this._flags & F_CLIENT ? "client" : "server";
  }
  /** @ignore */
  set _role(role: Role) {
    this.#flag(F_CLIENT, role === "client");
  }
  /** @ignore `_parser` has limits of its own: keep it even when idle. */
  get _parserPinned(): boolean {
    return (this._flags & F_PARSER_PINNED) !== 0;
  }
  /** @ignore */
  set _parserPinned(on: boolean) {
    this.#flag(F_PARSER_PINNED, on);
  }
  /** @ignore Outbox: in the flush list. */
  get _dirty(): boolean {
    return (this._flags & F_DIRTY) !== 0;
  }
  /** @ignore */
  set _dirty(on: boolean) {
    this.#flag(F_DIRTY, on);
  }
  /** @ignore Outbox: waiting for writability. */
  get _blocked(): boolean {
    return (this._flags & F_BLOCKED) !== 0;
  }
  /** @ignore */
  set _blocked(on: boolean) {
    this.#flag(F_BLOCKED, on);
  }
  /** @ignore Outbox: the queue starts in the middle of a frame (a write was cut short). */
  get _partial(): boolean {
    return (this._flags & F_PARTIAL) !== 0;
  }
  /** @ignore */
  set _partial(on: boolean) {
    this.#flag(F_PARTIAL, on);
  }
  /** @ignore We sent a close frame. */
  get _closeSent(): boolean {
    return (this._flags & F_CLOSE_SENT) !== 0;
  }
  /** @ignore */
  set _closeSent(on: boolean) {
    this.#flag(F_CLOSE_SENT, on);
  }
  /** @ignore We received a close frame. */
  get _closeReceived(): boolean {
    return (this._flags & F_CLOSE_RECEIVED) !== 0;
  }
  /** @ignore */
  set _closeReceived(on: boolean) {
    this.#flag(F_CLOSE_RECEIVED, on);
  }
  /** @ignore Close the socket once everything queued is written. */
  get _closeWhenFlushed(): boolean {
    return (this._flags & F_CLOSE_WHEN_FLUSHED) !== 0;
  }
  /** @ignore */
  set _closeWhenFlushed(on: boolean) {
    this.#flag(F_CLOSE_WHEN_FLUSHED, on);
  }
  /** @ignore A heartbeat ping is unanswered. */
  get _pingOutstanding(): boolean {
    return (this._flags & F_PING_OUTSTANDING) !== 0;
  }
  /** @ignore */
  set _pingOutstanding(on: boolean) {
    this.#flag(F_PING_OUTSTANDING, on);
  }

  /** @ignore Code of the received close frame (1005 none). */
  get _peerCode(): number {
    return this._x?.peerCode ?? 1005;
  }
  /** @ignore */
  set _peerCode(code: number) {
    if (code !== 1005 || this._x !== null) this._extras().peerCode = code;
  }
  /** @ignore Reason of the received close frame. */
  get _peerReason(): string {
    return this._x?.peerReason ?? "";
  }
  /** @ignore */
  set _peerReason(reason: string) {
    if (reason !== "" || this._x !== null) this._extras().peerReason = reason;
  }
  /** @ignore Why we are failing the connection, reported to `closed()`. */
  get _failReason(): string {
    return this._x?.failReason ?? "";
  }
  /** @ignore */
  set _failReason(reason: string) {
    if (reason !== "" || this._x !== null) this._extras().failReason = reason;
  }
  /** @ignore Coarse-clock deadline of the closing handshake (0: none). */
  get _deadline(): number {
    return this._x?.deadline ?? 0;
  }
  /** @ignore */
  set _deadline(t: number) {
    if (t !== 0 || this._x !== null) this._extras().deadline = t;
  }
  /** @ignore Topics this connection is subscribed to. */
  get _topics(): Set<string> | null {
    return this._x?.topics ?? null;
  }
  /** @ignore */
  set _topics(topics: Set<string> | null) {
    if (topics !== null || this._x !== null) this._extras().topics = topics;
  }
  /** @ignore Messages dropped by the "drop" backpressure policy. */
  get _dropped(): number {
    return this._x?.dropped ?? 0;
  }
  /** @ignore */
  set _dropped(n: number) {
    if (n !== 0 || this._x !== null) this._extras().dropped = n;
  }
  /** @ignore Chosen subprotocol. */
  get _protocol(): string {
    return this._x?.protocol ?? "";
  }
  /** @ignore */
  set _protocol(p: string) {
    if (p !== "" || this._x !== null) this._extras().protocol = p;
  }
  /** @ignore Handlers of the manager that ran this connection (kept for `closed()`). */
  get _lastHandlers(): WebSocketHandlers<T> | null {
    return this._x?.lastHandlers ?? null;
  }
  /** @ignore */
  set _lastHandlers(h: WebSocketHandlers<T> | null) {
    if (h !== null || this._x !== null) this._extras().lastHandlers = h;
  }
  /** @ignore Handlers of this connection alone (`connect({ handlers })`); null: the manager's. */
  get _ownHandlers(): WebSocketHandlers<T> | null {
    return this._x?.ownHandlers ?? null;
  }
  /** @ignore */
  set _ownHandlers(h: WebSocketHandlers<T> | null) {
    if (h !== null || this._x !== null) this._extras().ownHandlers = h;
  }
  /** @ignore The manager that ran this connection, while `closed()` runs. */
  get _lastManager(): WebSocketManager | null {
    return this._x?.lastManager ?? null;
  }
  /** @ignore */
  set _lastManager(m: WebSocketManager | null) {
    if (m !== null || this._x !== null) this._extras().lastManager = m;
  }

  get #events(): EventState | null {
    return this._x?.events ?? null;
  }
  set #events(ev: EventState | null) {
    if (ev !== null || this._x !== null) this._extras().events = ev;
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
    return this._state;
  }

  /** `"server"` for accepted connections, `"client"` for ones opened with `connect()`. */
  get role(): Role {
    return this._role;
  }

  /** The subprotocol chosen in the handshake, or `""`. */
  get protocol(): string {
    return this._protocol;
  }

  /** Always `""`: no extension is negotiated (permessage-deflate is declined). */
  get extensions(): string {
    return "";
  }

  /** Server side: the request target (`/chat?room=1`). Client side: the URL connected to. */
  get url(): string {
    return this._url;
  }

  /** Address of the peer, or null when unknown. */
  get remoteAddress(): NetAddr | null {
    if (this._remoteHost === "") return null;
    return { transport: "tcp", hostname: this._remoteHost, port: this._remotePort };
  }

  /** Bytes queued by `send()` and friends that the kernel has not accepted yet. */
  get bufferedAmount(): number {
    return this._qBytes + (this._re - this._rs);
  }

  /** Messages not queued because of the `"drop"` backpressure policy. */
  get droppedMessages(): number {
    return this._dropped;
  }

  /** The manager running this connection, or null once it is closed. */
  get manager(): WebSocketManager | null {
    return this._m;
  }

  /** Topics this connection is subscribed to. */
  get topics(): string[] {
    return this._topics === null ? [] : [...this._topics];
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends a message: text for a string (unless `binary` is true), binary for bytes.
   * The data is copied (or encoded) at once; later changes to it do not matter.
   *
   * @returns true when queued; false when the connection is closing/closed or the
   * `"drop"` backpressure policy dropped it (see {@link WebSocket.droppedMessages}).
   * @throws {InvalidStateError} while still connecting.
   */
  send(data: string | ArrayBufferView | ArrayBuffer, binary?: boolean): boolean {
    if (this._state !== OPEN) {
      if (this._state === CONNECTING) throw new InvalidStateError("the WebSocket is connecting");
      return false;
    }
    const m = this._m;
    // Detached with WebSocketManager.remove(): nothing writes this socket until adopted.
    if (m === null) return false;
    if (typeof data === "string") {
      return binary === true
        ? m._sendData(this, utf8.encode(data), true)
        : m._sendData(this, data, false);
    }
    return m._sendData(this, toBytes(data), binary !== false);
  }

  /**
   * Sends a ping (at most 125 bytes of payload). The peer's pong arrives in
   * {@link WebSocket.ponged}.
   */
  ping(payload: string | Uint8Array = EMPTY): boolean {
    if (this._state !== OPEN || this._m === null) return false;
    return this._m._sendControl(this, 0x9, payload);
  }

  /** Sends an unsolicited pong (a one-way heartbeat). */
  pong(payload: string | Uint8Array = EMPTY): boolean {
    if (this._state !== OPEN || this._m === null) return false;
    return this._m._sendControl(this, 0xa, payload);
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
    if (this._state === CLOSING || this._state === CLOSED) return;
    assertSendableCloseCode(code);
    if (this._state === CONNECTING) {
      this._failReason = "closed while connecting";
      this.terminate();
      return;
    }
    if (this._m === null) {
      throw new InvalidStateError("the WebSocket is not attached to a manager; adopt() it first");
    }
    this._m._sendClose(this, code, reason);
  }

  /** Drops the connection now, without a close frame. Idempotent. */
  terminate(): void {
    if (this._state === CLOSED) return;
    this._finish(1006, this._failReason);
  }

  // ---------------------------------------------------------------- topics

  /** Subscribes this connection to `topic` (see {@link WebSocketManager.publish}). */
  subscribe(topic: string): void {
    this._m?.subscribe(this, topic);
  }

  /** Unsubscribes this connection from `topic`. */
  unsubscribe(topic: string): void {
    this._m?.unsubscribe(this, topic);
  }

  /** True when subscribed to `topic`. */
  isSubscribed(topic: string): boolean {
    return this._topics !== null && this._topics.has(topic);
  }

  /** Publishes to every subscriber of `topic` except this connection. */
  publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, binary?: boolean): number {
    return this._m?.publish(topic, data, { binary, except: this }) ?? 0;
  }

  // ---------------------------------------------------------------- ws4py lifecycle

  /**
   * Reads what is available on the socket, parses it and dispatches what it completes.
   * The manager calls it when the descriptor is readable.
   *
   * @returns false once the connection is finished (the manager then drops it).
   */
  once(): boolean {
    const m = this._m;
    if (m === null || this._state === CLOSED) return false;
    const buf = m._readBuf;
    const size = buf.length;
    for (let round = 0; round < 16; round++) {
      const n = recvInto(this.fd, buf, m._readLen);
      if (n > 0) {
        this._lastSeen = m._clock;
        this._pingOutstanding = false;
        m.stats.bytesIn += n;
        // After a close frame (received, or sent because the peer broke the protocol)
        // nothing more is parsed; reading goes on only to see the peer close.
        if (!this._closeWhenFlushed) {
          m._parse(this, buf, 0, n);
          if ((this._state as number) === CLOSED) return false;
        }
        if (n < size) return true;
        continue;
      }
      if (n === WOULD_BLOCK) return true;
      if (n === 0) {
        // End of stream: clean only when both close frames went through.
        if (this._closeSent && this._closeReceived) this._finish(this._peerCode, this._peerReason);
        else this._finish(1006, this._failReason);
        return false;
      }
      if (n === IO_FAILED) {
        this._finish(1006, this._failReason);
        return false;
      }
    }
    return (this._state as number) !== CLOSED;
  }

  /** Hook: the connection is open. Default: calls the `open` handler and dispatches `open`. */
  opened(): void {
    this._h()?.open?.(this);
    if (this.#events !== null) this.#emit(new Event("open"), this.#events.onopen);
  }

  /** Hook: a complete message arrived. Default: `message` handler and `message` event. */
  receivedMessage(data: string | Uint8Array): void {
    const out = typeof data === "string" || this.binaryType === "uint8array"
      ? data
      : exactBuffer(data);
    this._h()?.message?.(this, out);
    if (this.#events !== null) {
      this.#emit(new MessageEvent("message", { data: out }), this.#events.onmessage);
    }
  }

  /** Hook: a pong arrived. Default: the `pong` handler. */
  ponged(payload: Uint8Array): void {
    this._h()?.pong?.(this, payload);
  }

  /** Hook: a ping arrived (the pong reply is already queued). Default: the `ping` handler. */
  pinged(payload: Uint8Array): void {
    this._h()?.ping?.(this, payload);
  }

  /** Hook: everything queued was written after the socket had been full. */
  drained(): void {
    this._h()?.drain?.(this);
  }

  /**
   * Hook: the connection is closed; runs exactly once. `code` is the peer's close code,
   * 1005 when its close frame had none, 1006 when no close frame was received.
   */
  closed(code: number, reason: string): void {
    const handlers = this._lastHandlers;
    handlers?.close?.(this, code, reason);
    if (this.#events !== null) {
      this.#emit(
        new CloseEvent("close", { code, reason, wasClean: this._closeSent && this._closeReceived }),
        this.#events.onclose,
      );
    }
  }

  // ---------------------------------------------------------------- WHATWG events

  /**
   * Adds an event listener (`open`, `message`, `close`, `error`). Supports the `once` and
   * `signal` options. An exception thrown by a listener is reported to the manager's
   * `error` handler (or the console), never to `reportError`.
   */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    if (listener === null) return;
    const capture = typeof options === "boolean" ? options : options?.capture === true;
    const once = typeof options === "object" && options.once === true;
    const signal = typeof options === "object" ? options.signal : undefined;
    if (signal?.aborted) return;
    const map = this.#eventState().listeners;
    let list = map.get(type);
    if (list === undefined) {
      list = [];
      map.set(type, list);
    }
    if (list.some((e) => e.fn === listener && e.capture === capture)) return;
    list.push({ fn: listener, capture, once, removed: false });
    signal?.addEventListener(
      "abort",
      () => this.removeEventListener(type, listener, { capture }),
      { once: true },
    );
  }

  /** Removes an event listener. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    const list = this.#events?.listeners.get(type);
    if (list === undefined || listener === null) return;
    const capture = typeof options === "boolean" ? options : options?.capture === true;
    const i = list.findIndex((e) => e.fn === listener && e.capture === capture);
    if (i < 0) return;
    list[i].removed = true;
    list.splice(i, 1);
  }

  /** Dispatches an event to this connection's listeners; false when one called `preventDefault()`. */
  dispatchEvent(event: Event): boolean {
    if (this.#events !== null) this.#emit(event, null);
    return !event.defaultPrevented;
  }

  /** `open` event handler property. */
  get onopen(): ((ev: Event) => void) | null {
    return this.#events?.onopen ?? null;
  }
  set onopen(fn: ((ev: Event) => void) | null) {
    this.#eventState().onopen = fn;
  }
  /** `message` event handler property. */
  get onmessage(): ((ev: MessageEvent) => void) | null {
    return this.#events?.onmessage ?? null;
  }
  set onmessage(fn: ((ev: MessageEvent) => void) | null) {
    this.#eventState().onmessage = fn;
  }
  /** `close` event handler property. */
  get onclose(): ((ev: CloseEvent) => void) | null {
    return this.#events?.onclose ?? null;
  }
  set onclose(fn: ((ev: CloseEvent) => void) | null) {
    this.#eventState().onclose = fn;
  }
  /** `error` event handler property. */
  get onerror(): ((ev: Event) => void) | null {
    return this.#events?.onerror ?? null;
  }
  set onerror(fn: ((ev: Event) => void) | null) {
    this.#eventState().onerror = fn;
  }

  /** @ignore Dispatches an `error` event; true when someone listened. */
  _emitError(error: unknown): boolean {
    const ev = this.#events;
    if (ev === null) return false;
    const message = error instanceof Error ? error.message : String(error);
    const listened = ev.onerror !== null || (ev.listeners.get("error")?.length ?? 0) > 0;
    if (listened) this.#emit(new ErrorEvent("error", { error, message }), ev.onerror);
    return listened;
  }

  #eventState(): EventState {
    if (this.#events === null) this.#events = new EventState();
    return this.#events;
  }

  /** Runs the `on*` handler, then the listeners, each guarded; `target` is this object. */
  #emit<E extends Event>(event: E, handler: ((ev: E) => void) | null): void {
    const ev = this.#events!;
    Object.defineProperty(event, "target", { value: this, configurable: true });
    Object.defineProperty(event, "currentTarget", { value: this, configurable: true });
    if (handler !== null) {
      try {
        handler.call(this, event);
      } catch (err) {
        this.#listenerThrew(err, event.type);
      }
    }
    const list = ev.listeners.get(event.type);
    if (list === undefined || list.length === 0) return;
    for (const entry of list.length === 1 ? [list[0]] : list.slice()) {
      if (entry.removed) continue;
      if (entry.once) this.removeEventListener(event.type, entry.fn, { capture: entry.capture });
      try {
        // Typed loosely on purpose: with `npm:` imports in the same type check, Node's
        // `Event` declarations merge into the listener types and no longer match `E`.
        const fn = entry.fn as ((ev: E) => void) | { handleEvent(ev: E): void };
        if (typeof fn === "function") fn.call(this, event);
        else fn.handleEvent(event);
      } catch (err) {
        this.#listenerThrew(err, event.type);
      }
    }
  }

  #listenerThrew(err: unknown, type: string): void {
    const m = this._m ?? this._lastManager;
    // An `error` listener that throws is not reported as an error again (no recursion).
    if (m !== null && type !== "error") m._reportError(err, this);
    else console.error(`fdws: a WebSocket ${type} listener threw:`, err);
  }

  // ---------------------------------------------------------------- protocol reactions

  /** @ignore The handlers that see this connection's moments. */
  _h(): WebSocketHandlers<T> | null {
    return this._ownHandlers ?? (this._m?._handlers as WebSocketHandlers<T> | undefined) ?? null;
  }

  /** @ignore A complete message arrived. */
  _onMessage(data: string | Uint8Array): void {
    const m = this._m!;
    m.stats.messagesIn++;
    try {
      this.receivedMessage(data);
    } catch (err) {
      m._reportError(err, this);
    }
  }

  /** @ignore A ping arrived: answer it (one pong per ping), then tell the application. */
  _onPing(payload: Uint8Array): void {
    const m = this._m!;
    if (!this._closeSent) m._sendControl(this, 0xa, payload);
    try {
      this.pinged(payload);
    } catch (err) {
      m._reportError(err, this);
    }
  }

  /** @ignore A pong arrived. */
  _onPong(payload: Uint8Array): void {
    const m = this._m!;
    try {
      this.ponged(payload);
    } catch (err) {
      m._reportError(err, this);
    }
  }

  /** @ignore A valid close frame arrived. */
  _onClose(code: number, reason: string): void {
    this._closeReceived = true;
    this._peerCode = code;
    this._peerReason = reason;
    const m = this._m!;
    if (!this._closeSent) {
      // Echo the code (none when the peer sent none) and finish once it is written.
      m._sendClose(this, code === 1005 ? 0 : code, "");
    }
    this._state = CLOSING;
    this._closeWhenFlushed = true;
    m._closeIfFlushed(this);
  }

  /** @ignore The peer broke the protocol: send `code` and drop the connection. */
  _onFail(code: number, reason: string): void {
    this._failReason = reason;
    const m = this._m!;
    m.stats.protocolErrors++;
    if (!this._closeSent) m._sendClose(this, code, reason.length <= 40 ? reason : "");
    this._state = CLOSING;
    this._closeWhenFlushed = true;
    m._closeIfFlushed(this);
  }

  /** @ignore Releases everything and runs `closed()` once. */
  _finish(code: number, reason: string): void {
    if (this._state === CLOSED) return;
    this._state = CLOSED;
    const m = this._m;
    this._lastHandlers = this._ownHandlers ?? (m?._handlers as WebSocketHandlers<T> | undefined) ??
      null;
    this._lastManager = m;
    this._parser?.reset();
    this._parser = null;
    if (m !== null) {
      m._detach(this, code);
    } else if (this.fd >= 0) {
      // Detached (removed and never adopted): the descriptor is still ours to close.
      closeFd(this.fd);
      this.fd = -1;
    }
    this._m = null;
    try {
      this.closed(code, reason);
    } catch (err) {
      if (m !== null) m._reportError(err, this);
      else console.error(err);
    }
    this._lastHandlers = null;
    this._lastManager = null;
  }

  /** @ignore Attaches an accepted/connected descriptor; the manager calls it from `add`. */
  _attach(m: WebSocketManager, fd: number, role: Role): void {
    this.fd = fd;
    this._m = m;
    this._role = role;
    this._state = OPEN;
    this._lastSeen = m._clock;
  }
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
    : buf.slice(data.byteOffset, data.byteOffset + data.byteLength);
}

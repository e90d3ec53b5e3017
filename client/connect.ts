/**
 * The WebSocket client: `connect()` opens a `ws://` connection on the same machinery as
 * the server (raw non-blocking sockets, the manager's poller, the manager's corked write
 * path) and resolves with an open {@link WebSocket} whose frames are masked.
 *
 * Connections opened without a `manager` run on a shared client manager created on
 * demand and stopped once its last connection has closed, so a script that only uses
 * clients exits by itself when it has closed its sockets.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { SyscallError } from "../ffi/errno.ts";
import { type PollTarget, type WebSocketHandlers, WebSocketManager } from "../core/manager.ts";
import { AddressError } from "../net/address.ts";
import { IO_FAILED, lastIoError, recvInto, sendFrom, WOULD_BLOCK } from "../net/io.ts";
import { type ResolvedAddress, ResolveError, resolveHost } from "../net/resolve.ts";
import { closeFd, connectTcp, finishConnect } from "../net/tcp.ts";
import { Interest, Ready } from "../poller/poller.ts";
import {
  buildClientRequest,
  generateKey,
  validateUpgradeResponse,
} from "../protocol/handshake/client.ts";
import { FrameParser } from "../protocol/frame/parser.ts";
import { HttpResponseParser, type ParsedResponse } from "../protocol/http/response.ts";
import { WebSocket } from "../core/websocket.ts";

/**
 * Options of {@link connect}.
 *
 * @typeParam T Type of `ws.data`.
 *
 * @example Offer subprotocols, send a header, bound the wait
 * ```ts ignore
 * import { connect, type ConnectOptions } from "./connect.ts";
 *
 * const options: ConnectOptions<{ user: string }> = {
 *   protocols: ["chat.v2", "chat.v1"],
 *   headers: { Origin: "https://example.test" },
 *   data: { user: "ada" },
 *   timeout: 5_000,
 *   signal: AbortSignal.timeout(10_000),
 *   handlers: { message: (ws, data) => console.log(ws.data.user, "got", data) },
 * };
 * const ws = await connect("ws://127.0.0.1:9001/chat", options);
 * console.log(ws.protocol); // the server's pick, e.g. "chat.v2"
 * ```
 */
export interface ConnectOptions<T = unknown> {
  /** Subprotocols to offer, by preference (tokens, no repeats). */
  protocols?: string[];
  /** Extra request headers (`Origin`, `Authorization`, ...); not the handshake's own. */
  headers?: HeadersInit;
  /**
   * Run the connection on this manager (started if it is not running), e.g. one that also
   * runs a server's connections. Default: the shared client manager.
   */
  manager?: WebSocketManager<T>;
  /**
   * Handler functions of this connection only. They replace, for this connection, the
   * handlers of the manager it runs on.
   */
  handlers?: WebSocketHandlers<T>;
  /** Class instantiated for the connection (ws4py's client class with its hooks). */
  webSocketClass?: new () => WebSocket<T>;
  /** Initial `ws.data`. */
  data?: T;
  /**
   * Time allowed for the whole opening (name resolution, TCP connect, handshake), in ms;
   * 0 or `Infinity` waits forever. Default 10,000.
   */
  timeout?: number;
  /** Largest message accepted from the server (bytes); larger ones close with 1009. Default: the manager's. */
  maxMessageSize?: number;
  /** Aborts the opening (the promise rejects with code `"ABORTED"`). */
  signal?: AbortSignal;
}

/**
 * Why {@link connect} failed. `code` tells the kind of failure:
 *
 * - `"INVALID_URL"`, `"TLS_UNSUPPORTED"` (a `wss:` URL), `"INVALID_OPTION"`: the arguments;
 * - `"ENOTFOUND"`, `"EAI_AGAIN"`, ...: name resolution (`cause` is the `ResolveError`);
 * - `"ECONNREFUSED"`, `"ENETUNREACH"`, `"ECONNRESET"`, ...: the system call that failed
 *   (`cause` is the `SyscallError`);
 * - `"ETIMEDOUT"`: the `timeout` passed; `"ABORTED"`: the `signal` fired (`cause` is its reason);
 * - `"UNEXPECTED_RESPONSE"`: the server answered with another status than 101 (see
 *   `status`); `"HANDSHAKE_FAILED"`: an invalid answer (wrong `Sec-WebSocket-Accept`, a
 *   subprotocol that was not offered, an extension, malformed HTTP, or the connection
 *   closed before the answer);
 * - `"MANAGER_STOPPED"`: the manager stopped while connecting.
 *
 * No descriptor is left open when the promise rejects.
 *
 * @example
 * ```ts ignore
 * import { connect, ConnectError } from "./connect.ts";
 *
 * try {
 *   await connect("ws://127.0.0.1:1/");
 * } catch (err) {
 *   if (err instanceof ConnectError && err.code === "ECONNREFUSED") console.log("nobody there");
 * }
 * ```
 */
export class ConnectError extends FdwsError {
  /** The URL being connected to. */
  readonly url: string;
  /** HTTP status of the server's answer, or 0 when none was read. */
  readonly status: number;
  /** The address being tried when the failure happened, or `""`. */
  readonly address: string;

  /**
   * Creates the error; {@link connect} does this.
   *
   * @param code Stable identifier (see the class description).
   * @param message Human-readable description.
   * @param init URL, status, address and cause.
   */
  constructor(
    code: string,
    message: string,
    init: { url?: string; status?: number; address?: string; cause?: unknown } = {},
  ) {
    super(code, message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ConnectError";
    this.url = init.url ?? "";
    this.status = init.status ?? 0;
    this.address = init.address ?? "";
  }
}

// ------------------------------------------------------------------ the shared manager

/** A claim on a manager for one connection: released when it fails or, once open, closes. */
interface Lease<T> {
  readonly manager: WebSocketManager<T>;
  release(): void;
}

interface Shared {
  manager: WebSocketManager<unknown>;
  refs: number;
}

let shared: Shared | null = null;

/** Claims the shared client manager, creating and starting it when there is none. */
function sharedLease<T>(): Lease<T> {
  if (shared === null) {
    const manager = new WebSocketManager<unknown>();
    manager.start();
    shared = { manager, refs: 0 };
  }
  const entry = shared;
  entry.refs++;
  let released = false;
  return {
    manager: entry.manager as WebSocketManager<T>,
    release(): void {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      // Last connection gone: stop the loop so that the process may exit. The next
      // connect() creates a new manager.
      if (shared === entry) shared = null;
      entry.manager.stop();
    },
  };
}

function userLease<T>(manager: WebSocketManager<T>): Lease<T> {
  return { manager, release(): void {} };
}

// ------------------------------------------------------------------ one attempt

interface Attempt<T> {
  readonly url: string;
  readonly port: number;
  readonly key: string;
  readonly request: Uint8Array;
  readonly protocols: readonly string[];
  readonly options: ConnectOptions<T>;
  readonly lease: Lease<T>;
}

type Phase = "connecting" | "writing" | "reading" | "done";

/**
 * One TCP connection being opened and its handshake, polled by the manager. It settles
 * `result` exactly once, and owns its descriptor until it hands it to the manager.
 */
class ClientHandshake<T> implements PollTarget {
  readonly fd: number;
  readonly result = Promise.withResolvers<WebSocket<T>>();
  /** True when it failed before the TCP connection was established (try the next address). */
  retryable = false;
  readonly #attempt: Attempt<T>;
  readonly #address: ResolvedAddress;
  readonly #manager: WebSocketManager<T>;
  readonly #parser = new HttpResponseParser();
  #phase: Phase = "connecting";
  #sent = 0;
  #registered = false;

  /** Starts the TCP connection; throws (with nothing left open) when that fails at once. */
  constructor(attempt: Attempt<T>, address: ResolvedAddress) {
    this.#attempt = attempt;
    this.#address = address;
    this.#manager = attempt.lease.manager;
    this.fd = connectTcp(address.address, attempt.port).fd;
    try {
      // Writable means connected (or failed: SO_ERROR tells), whether or not connect()
      // completed at once.
      this.#manager._addTarget(this, Interest.WRITABLE);
      this.#registered = true;
    } catch (err) {
      closeFd(this.fd);
      throw err;
    }
  }

  onReady(ready: number): void {
    if (this.#phase === "connecting") {
      try {
        finishConnect(this.fd);
      } catch (err) {
        this.fail(this.#wrap(err), true);
        return;
      }
      this.#phase = "writing";
    }
    if (this.#phase === "writing") {
      this.#write();
      return;
    }
    if (this.#phase === "reading" && ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR)) {
      this.#read();
    }
  }

  /** The manager shut down while connecting (it unregistered us already). */
  close(): void {
    this.#registered = false;
    this.fail(this.#error("MANAGER_STOPPED", "the manager stopped while connecting"), false);
  }

  /** Settles with `err` and releases the descriptor; no-op once settled. */
  fail(err: ConnectError, retryable: boolean): void {
    if (this.#phase === "done") return;
    this.#phase = "done";
    this.retryable = retryable;
    this.#unregister();
    closeFd(this.fd);
    this.result.reject(err);
  }

  #unregister(): void {
    if (!this.#registered) return;
    this.#registered = false;
    try {
      this.#manager._removeTarget(this);
    } catch {
      // The poller is already closed: nothing is registered any more.
    }
  }

  #write(): void {
    const request = this.#attempt.request;
    const rest = request.length - this.#sent;
    const n = sendFrom(this.fd, request.subarray(this.#sent), rest);
    if (n === WOULD_BLOCK) return;
    if (n === IO_FAILED) {
      this.fail(this.#wrap(new SyscallError("send", lastIoError())), false);
      return;
    }
    this.#sent += n;
    if (n < rest) return;
    this.#phase = "reading";
    this.#manager._modifyTarget(this, Interest.READABLE);
    this.#read();
  }

  #read(): void {
    const m = this.#manager;
    const buf = m._readBuf;
    for (;;) {
      const n = recvInto(this.fd, buf, m._readLen);
      if (n === WOULD_BLOCK) return;
      if (n === 0) {
        this.fail(
          this.#error("HANDSHAKE_FAILED", "the server closed the connection before answering"),
          false,
        );
        return;
      }
      if (n === IO_FAILED) {
        this.fail(this.#wrap(new SyscallError("recv", lastIoError())), false);
        return;
      }
      const r = this.#parser.push(buf, 0, n);
      if (r.kind === "incomplete") continue;
      if (r.kind === "error") {
        this.fail(
          this.#error("HANDSHAKE_FAILED", `invalid handshake response: ${r.message}`),
          false,
        );
        return;
      }
      this.#complete(r.response, r.consumed < n ? buf.slice(r.consumed, n) : null);
      return;
    }
  }

  #complete(res: ParsedResponse, leftover: Uint8Array | null): void {
    const attempt = this.#attempt;
    if (res.status !== 101) {
      const reason = res.reason === "" ? "" : ` ${res.reason}`;
      this.fail(
        this.#error(
          "UNEXPECTED_RESPONSE",
          `the server answered ${res.status}${reason} instead of 101`,
          res.status,
        ),
        false,
      );
      return;
    }
    const v = validateUpgradeResponse(res, attempt.key, attempt.protocols);
    if (!v.ok) {
      this.fail(this.#error("HANDSHAKE_FAILED", v.message, 101), false);
      return;
    }
    this.#handOver(v.protocol ?? "", leftover);
  }

  /** Gives the descriptor to the manager as an open client connection. */
  #handOver(protocol: string, leftover: Uint8Array | null): void {
    const attempt = this.#attempt;
    const options = attempt.options;
    const m = this.#manager;
    this.#unregister();
    this.#phase = "done";
    const WsClass = options.webSocketClass ?? (WebSocket as new () => WebSocket<T>);
    let ws: WebSocket<T>;
    try {
      ws = new WsClass();
    } catch (err) {
      closeFd(this.fd);
      this.result.reject(this.#error("HANDSHAKE_FAILED", "webSocketClass threw", 101, err));
      return;
    }
    ws._protocol = protocol;
    ws._url = attempt.url;
    ws._remoteHost = this.#address.address;
    ws._remotePort = attempt.port;
    if ("data" in options) ws.data = options.data as T;
    if (options.handlers !== undefined) ws._ownHandlers = options.handlers;
    if (options.manager === undefined) trackClose(ws, attempt.lease);
    const release = holdReads(ws, leftover);
    try {
      m._addSocket(ws, this.fd, "client", null, null);
    } catch (err) {
      // The manager is stopping: it closed the descriptor.
      this.result.reject(this.#error("MANAGER_STOPPED", "the manager is stopping", 101, err));
      return;
    }
    if (options.maxMessageSize !== undefined) {
      ws._parser = new FrameParser({ role: "client", maxMessageSize: options.maxMessageSize });
      ws._parserPinned = true;
    }
    this.result.resolve(ws);
    m._macrotasks.schedule(release);
  }

  #wrap(err: unknown): ConnectError {
    return toConnectError(err, this.#attempt.url, this.#target());
  }

  #error(code: string, message: string, status = 0, cause?: unknown): ConnectError {
    return new ConnectError(code, `${message} (${this.#attempt.url})`, {
      url: this.#attempt.url,
      status,
      address: this.#target(),
      cause,
    });
  }

  #target(): string {
    const a = this.#address;
    return a.family === 6
      ? `[${a.address}]:${this.#attempt.port}`
      : `${a.address}:${this.#attempt.port}`;
  }
}

/**
 * Until `release` runs, the manager does not read the connection: what arrived with the
 * handshake answer and after it waits until the code awaiting `connect()` has run (and
 * set `onmessage`, say), and is then delivered in order.
 */
function holdReads<T>(ws: WebSocket<T>, leftover: Uint8Array | null): () => void {
  // An own property shadows the class's once() (the user's override included) for a tick.
  const own = Object.getOwnPropertyDescriptor(ws, "once");
  ws.once = (): boolean => true;
  return (): void => {
    if (own !== undefined) Object.defineProperty(ws, "once", own);
    else Reflect.deleteProperty(ws, "once");
    const m = ws._m;
    if (leftover === null || m === null || ws._closeWhenFlushed) return;
    if (ws._state === WebSocket.CLOSED) return;
    try {
      m._parse(ws, leftover, 0, leftover.length);
    } catch (err) {
      m._reportError(err, ws as WebSocket);
    }
  };
}

/** Releases the connection's lease on its manager after its `closed()` hook has run. */
function trackClose<T>(ws: WebSocket<T>, lease: Lease<T>): void {
  const own = Object.getOwnPropertyDescriptor(ws, "closed");
  const hook = ws.closed;
  ws.closed = (code: number, reason: string): void => {
    if (own !== undefined) Object.defineProperty(ws, "closed", own);
    else Reflect.deleteProperty(ws, "closed");
    try {
      hook.call(ws, code, reason);
    } finally {
      lease.release();
    }
  };
}

function toConnectError(err: unknown, url: string, address: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof SyscallError) {
    return new ConnectError(err.code, `${err.syscall} ${err.code} ${address} (${url})`, {
      url,
      address,
      cause: err,
    });
  }
  if (err instanceof ResolveError) {
    return new ConnectError(err.code, `${err.message} (${url})`, { url, cause: err });
  }
  if (err instanceof AddressError) {
    return new ConnectError("INVALID_URL", `${err.message} (${url})`, { url, address, cause: err });
  }
  if (err instanceof FdwsError) {
    return new ConnectError(err.code, `${err.message} (${url})`, { url, address, cause: err });
  }
  return new ConnectError("CONNECT_FAILED", `${String(err)} (${url})`, {
    url,
    address,
    cause: err,
  });
}

// ------------------------------------------------------------------ connect()

interface Target {
  url: URL;
  host: string;
  port: number;
}

function parseTarget(input: string | URL): Target {
  let url: URL;
  try {
    url = new URL(typeof input === "string" ? input : input.href);
  } catch (err) {
    throw new ConnectError("INVALID_URL", `invalid URL ${JSON.stringify(String(input))}`, {
      url: String(input),
      cause: err,
    });
  }
  // As the WHATWG WebSocket does: http(s) URLs name the same endpoints as ws(s).
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol === "wss:") {
    throw new ConnectError("TLS_UNSUPPORTED", "TLS is not supported; terminate TLS in front", {
      url: url.href,
    });
  }
  if (url.protocol !== "ws:") {
    throw new ConnectError("INVALID_URL", `expected a ws: URL, got ${url.protocol}`, {
      url: url.href,
    });
  }
  let host = url.hostname;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") {
    throw new ConnectError("INVALID_URL", "the URL has no host", { url: url.href });
  }
  return { url, host, port: url.port === "" ? 80 : Number(url.port) };
}

function checkOptions<T>(options: ConnectOptions<T>): number {
  const timeout = options.timeout ?? 10_000;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new ConnectError("INVALID_OPTION", `timeout must be a number >= 0, got ${timeout}`);
  }
  const max = options.maxMessageSize;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 0)) {
    throw new ConnectError("INVALID_OPTION", `maxMessageSize must be a non-negative integer`);
  }
  return timeout;
}

/**
 * Opens a WebSocket connection to a `ws://` URL and resolves with the open connection.
 *
 * The host may be an IPv4 or IPv6 literal (`ws://[::1]:9001/`) or a name resolved by the
 * system resolver (addresses are tried in order until one accepts the TCP connection).
 * The TCP connection is non-blocking and polled by the manager; the upgrade request is
 * sent and the answer validated (status 101, `Sec-WebSocket-Accept`, a subprotocol among
 * those offered, no extension), then the descriptor becomes a managed client
 * {@link WebSocket}: frames it sends are masked. `ws.protocol` is the chosen subprotocol
 * (or `""`), `ws.url` the URL.
 *
 * What the server sends right after its answer is delivered once the code awaiting this
 * promise has run, so handlers set just after `await connect(...)` see every message. The
 * `open` handler and `opened()` hook run before the promise resolves.
 *
 * Without `options.manager`, the connection runs on a shared client manager that stops
 * once its last connection has closed (a client-only script then exits by itself).
 *
 * Needs `--allow-ffi`. `wss:` is refused (code `"TLS_UNSUPPORTED"`): terminate TLS in
 * front.
 *
 * @example Echo round trip
 * ```ts ignore
 * import { connect } from "./connect.ts";
 *
 * const ws = await connect("ws://127.0.0.1:9001/chat", { protocols: ["chat"] });
 * ws.onmessage = (ev) => {
 *   console.log("got", ev.data);
 *   ws.close(1000, "done");
 * };
 * ws.send("hello");
 * ```
 *
 * @example ws4py style: clients and a server on one manager
 * ```ts ignore
 * import { connect, serve, WebSocketManager } from "../mod.ts";
 *
 * const manager = new WebSocketManager();
 * const server = serve({ manager, port: 9002, websocket: { message: (ws, d) => ws.send(d) } });
 * const a = await connect("ws://127.0.0.1:9002/", {
 *   manager,
 *   handlers: { message: (_ws, data) => console.log("a got", data) },
 * });
 * a.send("ping");
 * await server.shutdown();
 * ```
 *
 * @param url A `ws:` URL (`http:` is read as `ws:`).
 * @param options See {@link ConnectOptions}.
 * @returns The open connection.
 * @throws {ConnectError} (as a rejection) for every failure; see its codes. Invalid
 * `protocols` or `headers` reject with a `HandshakeError`.
 */
export async function connect<T = unknown>(
  url: string | URL,
  options: ConnectOptions<T> = {},
): Promise<WebSocket<T>> {
  const target = parseTarget(url);
  const timeout = checkOptions(options);
  const href = target.url.href;
  const protocols = options.protocols ?? [];
  const key = generateKey();
  const request = buildClientRequest(target.url, key, { protocols, headers: options.headers });
  const signal = options.signal;
  const aborted = (): ConnectError =>
    new ConnectError("ABORTED", `connect aborted (${href})`, { url: href, cause: signal?.reason });
  if (signal?.aborted) throw aborted();

  const lease: Lease<T> = options.manager !== undefined
    ? userLease(options.manager)
    : sharedLease<T>();
  const m = lease.manager;

  let current: ClientHandshake<T> | null = null;
  let cancelled: ConnectError | null = null;
  const cancel = Promise.withResolvers<never>();
  cancel.promise.catch(() => {});
  const onCancel = (err: ConnectError): void => {
    if (cancelled !== null) return;
    cancelled = err;
    current?.fail(err, false);
    cancel.reject(err);
  };
  const timer = timeout > 0 && Number.isFinite(timeout)
    ? setTimeout(() => {
      onCancel(
        new ConnectError("ETIMEDOUT", `opening handshake timed out after ${timeout} ms (${href})`, {
          url: href,
        }),
      );
    }, timeout)
    : undefined;
  const onAbort = (): void => onCancel(aborted());
  signal?.addEventListener("abort", onAbort, { once: true });

  const attempt: Attempt<T> = {
    url: href,
    port: target.port,
    key,
    request,
    protocols,
    options,
    lease,
  };
  try {
    if (!m.running) m.start();
    let addresses: ResolvedAddress[];
    try {
      addresses = await Promise.race([resolveHost(target.host), cancel.promise]);
    } catch (err) {
      throw toConnectError(err, href, "");
    }
    let last: ConnectError | null = null;
    for (const address of addresses) {
      if (cancelled !== null) throw cancelled;
      let hs: ClientHandshake<T>;
      try {
        hs = new ClientHandshake(attempt, address);
      } catch (err) {
        // Refused or unreachable at once: try the next address.
        const where = address.family === 6
          ? `[${address.address}]:${target.port}`
          : `${address.address}:${target.port}`;
        last = toConnectError(err, href, where);
        continue;
      }
      current = hs;
      try {
        return await hs.result.promise;
      } catch (err) {
        if (!hs.retryable || cancelled !== null) throw err;
        last = err as ConnectError;
      } finally {
        current = null;
      }
    }
    throw last ??
      new ConnectError("ENOTFOUND", `no address to connect to (${href})`, { url: href });
  } catch (err) {
    lease.release();
    throw toConnectError(err, href, "");
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

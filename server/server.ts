/**
 * The WebSocket server: a listening socket and its pending handshakes on the same poller
 * as the connections of a {@link WebSocketManager}, with a `serve()` shaped like
 * `Deno.serve` and `Bun.serve`.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { SyscallError } from "../ffi/errno.ts";
import { WebSocketManager } from "../core/manager.ts";
import type { ManagerOptions, PollTarget, WebSocketHandlers } from "../core/manager.ts";
import { IO_FAILED, recvInto, sendFrom, WOULD_BLOCK } from "../net/io.ts";
import { closeFd, listenTcp, type NetAddr, shutdownFd, type TcpListener } from "../net/tcp.ts";
import { Interest, Ready } from "../poller/poller.ts";
import {
  buildErrorResponse,
  buildUpgradeResponse,
  selectProtocol,
  serializeResponse,
  validateUpgrade,
} from "../protocol/handshake/server.ts";
import {
  bodyFraming,
  HttpRequestParser,
  isUpgradeRequest,
  type ParsedRequest,
  toRequest,
} from "../protocol/http/request.ts";
import { WebSocket } from "../core/websocket.ts";

/** What a `fetch` handler may return. */
export type FetchResult = Response | undefined | void;

/** Options of {@link serve}. */
export interface ServeOptions<T = unknown> extends ManagerOptions<T> {
  /** Address to listen on: an IP literal or `"localhost"`. Default `"0.0.0.0"`. */
  hostname?: string;
  /** Port; 0 picks a free one (see `server.port`). Default 8080. */
  port?: number;
  /** SO_REUSEPORT, for several processes on one port. Default false. */
  reusePort?: boolean;
  /** listen(2) backlog. Default 511. */
  backlog?: number;
  /** For IPv6 addresses: refuse IPv4-mapped connections. Default false. */
  ipv6Only?: boolean;
  /** Connections (open plus handshaking) past which new ones get 503. Default unlimited. */
  maxConnections?: number;
  /** Largest request head; larger ones get 431. Default 8192. */
  maxHeaderBytes?: number;
  /** Largest request body read for `fetch` (Content-Length); larger get 413. Default 1 MiB. */
  maxBodySize?: number;
  /** Time a client has to complete its request (ms); then 408. Default 10,000. */
  handshakeTimeout?: number;
  /**
   * Sees every HTTP request as a WHATWG `Request`: returns a `Response`, or calls
   * `server.upgrade(request, ...)` to accept a WebSocket. Without it every valid upgrade
   * is accepted and other requests get 426.
   */
  fetch?: (request: Request, server: Server<T>) => FetchResult | Promise<FetchResult>;
  /** WebSocket handlers (same as `handlers`). */
  websocket?: WebSocketHandlers<T>;
  /** Class instantiated for each accepted connection (ws4py's handler class). */
  webSocketClass?: new () => WebSocket<T>;
  /** Run the connections on this manager instead of a new one. */
  manager?: WebSocketManager<T>;
  /** On SIGINT/SIGTERM: stop accepting, close every connection with 1001, exit 0. Default false. */
  signals?: boolean;
  /** Called once listening, with the bound address. */
  onListen?: (address: NetAddr) => void;
}

/** Options of {@link Server.upgrade}. */
export interface UpgradeOptions<T> {
  /** Initial `ws.data`. */
  data?: T;
  /** The subprotocol to select; must be one the client offered. */
  protocol?: string;
  /** Extra headers of the 101 response. */
  headers?: HeadersInit;
}

/** Server counters (connection counters live in `server.manager.stats`). */
export interface ServerStats {
  /** TCP connections accepted. */
  accepted: number;
  /** WebSockets opened. */
  upgraded: number;
  /** HTTP answers other than 101, by status. */
  responses: Record<number, number>;
  /** Connections closed at accept because the process had no descriptor left. */
  droppedAtLimit: number;
}

const LINGER_MS = 2_000;
const ACCEPT_PAUSE_MS = 100;
/** Reads per readiness event: a peer that sends without pause cannot hold the loop. */
const READ_ROUNDS = 16;

type Phase = "reading" | "body" | "handler" | "writing" | "lingering" | "done";

/** Pending upgrade state attached to the `Request` given to `fetch`. */
interface UpgradeTicket<T> {
  conn: HttpConnection<T>;
  key: string;
  offered: string[];
  chosen: UpgradeOptions<T> | null;
}

/** One accepted TCP connection until it becomes a WebSocket or gets its HTTP answer. */
class HttpConnection<T> implements PollTarget {
  readonly fd: number;
  readonly server: Server<T>;
  readonly host: string;
  readonly port: number;
  parser: HttpRequestParser | null;
  phase: Phase = "reading";
  deadline: number;
  out: Uint8Array | null = null;
  request: ParsedRequest | null = null;
  leftover: Uint8Array | null = null;
  body: Uint8Array | null = null;
  bodyFill = 0;

  constructor(server: Server<T>, fd: number, host: string, port: number, now: number) {
    this.server = server;
    this.fd = fd;
    this.host = host;
    this.port = port;
    this.parser = new HttpRequestParser({ maxHeaderBytes: server._maxHeaderBytes });
    this.deadline = now + server._handshakeTimeout;
  }

  onReady(ready: number): void {
    if (this.phase === "writing" && ready & Ready.WRITABLE) this.#writeOut();
    if (ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR)) this.#read();
  }

  nextTimer(): number {
    return this.deadline;
  }

  onTimer(now: number): void {
    if (now < this.deadline) return;
    if (this.phase === "reading" || this.phase === "body") {
      this.respond(buildErrorResponse(408, { body: "request timeout" }), 408);
    } else if (this.phase === "writing" || this.phase === "lingering") {
      this.close();
    }
  }

  #read(): void {
    const m = this.server.manager;
    const buf = m._readBuf;
    // Bounded: the poller is level-triggered and reports what is left on the next tick.
    for (let round = 0; round < READ_ROUNDS; round++) {
      const n = recvInto(this.fd, buf, m._readLen);
      if (n === WOULD_BLOCK) return;
      if (n === 0 || n === IO_FAILED) {
        // The client went away (or finished sending after our answer).
        this.close();
        return;
      }
      if (this.phase === "reading") this.#parse(buf, n);
      else if (this.phase === "body") this.#fillBody(buf, 0, n);
      // In "lingering", input is read and dropped until the client closes.
      if (this.phase === "done" || this.phase === "handler" || this.phase === "writing") return;
    }
  }

  #parse(buf: Uint8Array, n: number): void {
    const r = this.parser!.push(buf, 0, n);
    if (r.kind === "incomplete") return;
    if (r.kind === "error") {
      this.respond(buildErrorResponse(r.status, { body: r.message }), r.status);
      return;
    }
    this.parser = null;
    this.request = r.request;
    const rest = n - r.consumed;
    this.leftover = rest > 0 ? buf.slice(r.consumed, n) : null;
    this.server._onRequest(this, r.request);
  }

  /** Starts reading a Content-Length body of `length` bytes for the fetch handler. */
  readBody(length: number): void {
    this.body = new Uint8Array(length);
    this.bodyFill = 0;
    this.phase = "body";
    const early = this.leftover;
    this.leftover = null;
    if (early !== null) this.#fillBody(early, 0, early.length);
  }

  #fillBody(buf: Uint8Array, start: number, end: number): void {
    const body = this.body!;
    const take = Math.min(end - start, body.length - this.bodyFill);
    body.set(buf.subarray(start, start + take), this.bodyFill);
    this.bodyFill += take;
    if (this.bodyFill === body.length) {
      this.phase = "handler";
      this.server.manager._modifyTarget(this, 0);
      this.server._runFetch(this, this.request!, body);
    }
  }

  /** Sends an HTTP answer, then closes gracefully. */
  respond(bytes: Uint8Array, status: number): void {
    if (this.phase === "done") return;
    const stats = this.server.stats.responses;
    stats[status] = (stats[status] ?? 0) + 1;
    this.out = bytes;
    this.phase = "writing";
    this.deadline = this.server.manager._now() + LINGER_MS;
    this.server.manager._timersChanged();
    this.#writeOut();
  }

  #writeOut(): void {
    const out = this.out!;
    const n = sendFrom(this.fd, out, out.length);
    if (n === IO_FAILED) {
      this.close();
      return;
    }
    if (n !== out.length) {
      this.out = out.subarray(n > 0 ? n : 0);
      this.server.manager._modifyTarget(this, Interest.WRITABLE);
      return;
    }
    this.out = null;
    // Lingering close (as nginx does): send FIN, then read and drop what the client still
    // sends until it closes, so a close with unread input does not reset the connection
    // and destroy the answer before the client has read it.
    shutdownFd(this.fd, "write");
    this.phase = "lingering";
    this.deadline = this.server.manager._now() + LINGER_MS;
    this.server.manager._modifyTarget(this, Interest.READABLE);
  }

  close(): void {
    if (this.phase === "done") return;
    this.phase = "done";
    this.server._forget(this);
    closeFd(this.fd);
  }
}

/** The listening socket as a poll target. */
class ListenerTarget<T> implements PollTarget {
  readonly fd: number;
  readonly server: Server<T>;
  readonly listener: TcpListener;
  pausedUntil = 0;

  constructor(server: Server<T>, listener: TcpListener) {
    this.server = server;
    this.listener = listener;
    this.fd = listener.fd;
  }

  onReady(): void {
    const server = this.server;
    const listener = this.listener;
    for (;;) {
      let fd: number;
      try {
        fd = listener.accept();
      } catch (err) {
        // Out of descriptors with no spare, or of kernel memory: stop polling the listener
        // for a moment instead of spinning on a readiness we cannot serve.
        if (!(err instanceof SyscallError)) throw err;
        this.pausedUntil = server.manager._clock + ACCEPT_PAUSE_MS;
        server.manager._modifyTarget(this, 0);
        return;
      }
      if (fd < 0) break;
      server._onAccept(fd, listener.peer.hostname, listener.peer.port);
    }
    server.stats.droppedAtLimit = listener.droppedAtLimit;
  }

  nextTimer(): number {
    return this.pausedUntil === 0 ? Infinity : this.pausedUntil;
  }

  onTimer(now: number): void {
    if (this.pausedUntil !== 0 && now >= this.pausedUntil) {
      this.pausedUntil = 0;
      this.server.manager._modifyTarget(this, Interest.READABLE);
    }
  }

  close(): void {
    this.listener.close();
  }
}

/**
 * A running server. Created by {@link serve}.
 *
 * @typeParam T Type of `ws.data`.
 */
export class Server<T = unknown> {
  /** The manager running this server's connections. */
  readonly manager: WebSocketManager<T>;
  /** The bound address. */
  readonly address: NetAddr;
  /** Counters. */
  readonly stats: ServerStats = { accepted: 0, upgraded: 0, responses: {}, droppedAtLimit: 0 };
  /** Resolves when the server has shut down. */
  readonly finished: Promise<void>;

  /** @ignore */
  readonly _maxHeaderBytes: number;
  /** @ignore */
  readonly _handshakeTimeout: number;
  readonly #maxBody: number;
  readonly #maxConnections: number;
  readonly #fetch: ServeOptions<T>["fetch"];
  readonly #wsClass: new () => WebSocket<T>;
  readonly #listener: ListenerTarget<T>;
  readonly #pending = new Set<HttpConnection<T>>();
  readonly #tickets = new WeakMap<Request, UpgradeTicket<T>>();
  readonly #finished = Promise.withResolvers<void>();
  #shuttingDown: Promise<void> | null = null;
  #signalHandler: (() => void) | null = null;
  #unwatchedReported = false;

  /** @ignore Use {@link serve}. */
  constructor(options: ServeOptions<T>) {
    this._maxHeaderBytes = options.maxHeaderBytes ?? 8192;
    // Checked here, once: the parser of every accepted connection is built from it.
    new HttpRequestParser({ maxHeaderBytes: this._maxHeaderBytes });
    this._handshakeTimeout = options.handshakeTimeout ?? 10_000;
    this.#maxBody = options.maxBodySize ?? 1024 * 1024;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#fetch = options.fetch;
    this.#wsClass = options.webSocketClass ?? (WebSocket as new () => WebSocket<T>);
    this.finished = this.#finished.promise;
    const handlers = options.websocket ?? options.handlers;
    const ownManager = options.manager === undefined;
    this.manager = options.manager ?? new WebSocketManager<T>({ ...options, handlers });
    let target: ListenerTarget<T> | null = null;
    try {
      const listener = listenTcp({
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 8080,
        backlog: options.backlog,
        reusePort: options.reusePort,
        ipv6Only: options.ipv6Only,
      });
      target = new ListenerTarget(this, listener);
      this.manager._addTarget(target, Interest.READABLE);
    } catch (err) {
      // EADDRINUSE and friends: release what was created (the manager's poller holds
      // descriptors too) instead of leaking it with every failed serve().
      if (target !== null) {
        this.manager._removeTarget(target);
        target.close();
      }
      if (ownManager) void this.manager.join();
      throw err;
    }
    this.#listener = target;
    this.address = target.listener.address;
    if (!ownManager && handlers !== undefined) this.manager._handlers = handlers;
    this.manager.start();
    if (options.signals) {
      const handler = (): void => {
        this.shutdown().then(() => Deno.exit(0));
      };
      this.#signalHandler = handler;
      Deno.addSignalListener("SIGINT", handler);
      if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", handler);
    }
    // A manager stopped directly (not through shutdown()) also ends the server.
    this.manager.join().then(
      () => {
        this.#removeSignals();
        this.#finished.resolve();
      },
      (err) => {
        // The loop itself failed (callback errors are reported, never thrown): say so and
        // end the server rather than leave an unhandled rejection to kill the process.
        console.error("fdws: the manager loop failed:", err);
        this.#removeSignals();
        this.#finished.resolve();
      },
    );
    options.onListen?.(this.address);
  }

  #removeSignals(): void {
    if (this.#signalHandler === null) return;
    Deno.removeSignalListener("SIGINT", this.#signalHandler);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", this.#signalHandler);
    this.#signalHandler = null;
  }

  /** The bound port. */
  get port(): number {
    return this.address.port;
  }

  /** The bound address text. */
  get hostname(): string {
    return this.address.hostname;
  }

  /** Connections still in their HTTP phase. */
  get pendingHandshakes(): number {
    return this.#pending.size;
  }

  /**
   * Accepts the WebSocket upgrade of `request` (the one given to `fetch`). Returns false
   * when the request is not a valid upgrade or was already answered.
   *
   * @throws {HandshakeError} when `protocol` was not offered by the client.
   */
  upgrade(request: Request, options: UpgradeOptions<T> = {}): boolean {
    const ticket = this.#tickets.get(request);
    if (ticket === undefined || ticket.chosen !== null) return false;
    selectProtocol(ticket.offered, options.protocol);
    ticket.chosen = options;
    return true;
  }

  /**
   * Graceful shutdown: stops accepting, closes every connection with `code` (1001),
   * waits for the closing handshakes up to `timeout` ms (then terminates the rest) and
   * stops the manager.
   */
  shutdown(
    options: { code?: number; reason?: string; timeout?: number } = {},
  ): Promise<void> {
    if (this.#shuttingDown !== null) return this.#shuttingDown;
    this.#shuttingDown = (async () => {
      this.#removeSignals();
      this.manager._removeTarget(this.#listener);
      this.#listener.close();
      for (const conn of [...this.#pending]) conn.close();
      await this.manager.closeAll(
        options.code ?? 1001,
        options.reason ?? "server shutting down",
        options.timeout ?? 5_000,
      );
      this.manager.stop();
      await this.manager.join();
      this.#finished.resolve();
    })();
    return this.#shuttingDown;
  }

  /** @ignore */
  _onAccept(fd: number, host: string, port: number): void {
    this.stats.accepted++;
    const m = this.manager;
    const conn = new HttpConnection(this, fd, host, port, m._clock);
    try {
      m._addTarget(conn, Interest.READABLE);
    } catch (err) {
      // The poller cannot watch this descriptor (select: fd >= FD_SETSIZE). Refuse the
      // connection at once, as best we can without waiting, rather than leaving an
      // unwatched descriptor behind.
      m._removeTarget(conn);
      this.#refuseUnwatched(fd, err);
      return;
    }
    this.#pending.add(conn);
    if (m.size + this.#pending.size > this.#maxConnections) {
      conn.respond(buildErrorResponse(503, { body: "too many connections" }), 503);
    }
  }

  /** Answers 503 without waiting (one non-blocking send) and closes `fd`. */
  #refuseUnwatched(fd: number, err: unknown): void {
    if (!this.#unwatchedReported) {
      // Once per server: the configuration (poller, descriptor limit) needs attention.
      this.#unwatchedReported = true;
      this.manager._reportError(err, null);
    }
    const stats = this.stats.responses;
    stats[503] = (stats[503] ?? 0) + 1;
    const bytes = buildErrorResponse(503, { body: "server at capacity" });
    sendFrom(fd, bytes, bytes.length);
    shutdownFd(fd, "write");
    // Drop what the request already sent, so that the close is not a reset that would
    // destroy the answer before the client reads it.
    const m = this.manager;
    recvInto(fd, m._readBuf, m._readLen);
    closeFd(fd);
  }

  /** @ignore */
  _forget(conn: HttpConnection<T>): void {
    this.#pending.delete(conn);
    this.manager._removeTarget(conn);
  }

  /** @ignore A complete request head arrived. */
  _onRequest(conn: HttpConnection<T>, req: ParsedRequest): void {
    if (isUpgradeRequest(req)) {
      const v = validateUpgrade(req);
      if (!v.ok) {
        conn.respond(
          buildErrorResponse(v.status, { headers: v.headers, body: v.message }),
          v.status,
        );
        return;
      }
      if (this.#fetch === undefined) {
        this.#accept(conn, req, v.key, {});
        return;
      }
      let request: Request;
      try {
        request = toRequest(req, { remote: { hostname: conn.host, port: conn.port } });
      } catch (err) {
        conn.respond(buildErrorResponse(400, { body: (err as Error).message }), 400);
        return;
      }
      this.#tickets.set(request, { conn, key: v.key, offered: v.protocols, chosen: null });
      conn.phase = "handler";
      this.manager._modifyTarget(conn, 0);
      this.#startFetch(conn, request, req, v.key);
      return;
    }
    if (this.#fetch === undefined) {
      conn.respond(
        buildErrorResponse(426, {
          headers: [["Upgrade", "websocket"], ["Sec-WebSocket-Version", "13"]],
          body: "this endpoint speaks WebSocket only",
        }),
        426,
      );
      return;
    }
    const framing = bodyFraming(req);
    if (framing.kind === "invalid") {
      conn.respond(buildErrorResponse(400, { body: framing.message }), 400);
    } else if (framing.kind === "chunked") {
      conn.respond(
        buildErrorResponse(411, { body: "chunked request bodies are not supported" }),
        411,
      );
    } else if (framing.kind === "length") {
      if (framing.length > this.#maxBody) {
        conn.respond(buildErrorResponse(413, { body: "request body too large" }), 413);
      } else {
        conn.readBody(framing.length);
      }
    } else {
      conn.phase = "handler";
      this.manager._modifyTarget(conn, 0);
      this._runFetch(conn, req, null);
    }
  }

  /** @ignore Runs `fetch` for a plain HTTP request. */
  _runFetch(conn: HttpConnection<T>, req: ParsedRequest, body: Uint8Array | null): void {
    let request: Request;
    try {
      const base = toRequest(req, { remote: { hostname: conn.host, port: conn.port } });
      request = body === null ? base : new Request(base, { body: body as BufferSource });
    } catch (err) {
      conn.respond(buildErrorResponse(400, { body: (err as Error).message }), 400);
      return;
    }
    this.#startFetch(conn, request, req, null);
  }

  /**
   * Runs `fetch` detached from the loop: whatever fails after the handler (answering a
   * connection whose manager stopped meanwhile, ...) is reported and the connection
   * closed, never left as an unhandled rejection that would end the process.
   */
  #startFetch(
    conn: HttpConnection<T>,
    request: Request,
    req: ParsedRequest,
    key: string | null,
  ): void {
    this.#callFetch(conn, request, req, key).catch((err) => {
      this.manager._reportError(err, null);
      conn.close();
    });
  }

  async #callFetch(
    conn: HttpConnection<T>,
    request: Request,
    req: ParsedRequest,
    key: string | null,
  ): Promise<void> {
    let result: FetchResult;
    try {
      result = await this.#fetch!(request, this);
    } catch (err) {
      this.manager._reportError(err, null);
      conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
      return;
    }
    if (conn.phase === "done") return;
    if (key !== null) {
      const ticket = this.#tickets.get(request)!;
      this.#tickets.delete(request);
      if (ticket.chosen !== null) {
        this.#accept(conn, req, key, ticket.chosen);
        return;
      }
    }
    if (result instanceof Response) {
      try {
        const bytes = await serializeResponse(result, { head: req.method === "HEAD" });
        if ((conn.phase as Phase) !== "done") conn.respond(bytes, result.status);
      } catch (err) {
        this.manager._reportError(err, null);
        conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
      }
      return;
    }
    conn.respond(buildErrorResponse(500, { body: "the fetch handler returned no response" }), 500);
  }

  #accept(conn: HttpConnection<T>, req: ParsedRequest, key: string, opts: UpgradeOptions<T>): void {
    let preface: Uint8Array;
    try {
      preface = buildUpgradeResponse({
        key,
        protocol: opts.protocol ?? null,
        headers: opts.headers,
      });
    } catch (err) {
      this.manager._reportError(err, null);
      conn.respond(buildErrorResponse(500, { body: "invalid upgrade response" }), 500);
      return;
    }
    // Build the connection object while the HTTP connection still owns the descriptor: a
    // throwing webSocketClass (or data setter) then gets a 500, not a leaked socket.
    let ws: WebSocket<T>;
    try {
      ws = new this.#wsClass();
      ws._protocol = opts.protocol ?? "";
      ws._url = internTarget(req.target);
      ws._remoteHost = conn.host;
      ws._remotePort = conn.port;
      if ("data" in opts) ws.data = opts.data as T;
    } catch (err) {
      this.manager._reportError(err, null);
      conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
      return;
    }
    this.#pending.delete(conn);
    this.manager._removeTarget(conn);
    conn.phase = "done";
    this.stats.upgraded++;
    this.manager._addSocket(ws, conn.fd, "server", conn.leftover, preface);
  }
}

/**
 * Request targets kept by connections, shared when equal: most clients of a server ask
 * for the same few paths, and each connection keeps its target for its whole life.
 */
const targets = new Map<string, string>();

function internTarget(target: string): string {
  if (target.length > 128) return target;
  const known = targets.get(target);
  if (known !== undefined) return known;
  if (targets.size >= 1024) targets.clear();
  targets.set(target, target);
  return target;
}

/**
 * Starts a WebSocket server and returns it once listening.
 *
 * @example Echo server
 * ```ts ignore
 * import { serve } from "../../mod.ts";
 *
 * const server = serve({
 *   port: 9001,
 *   websocket: { message: (ws, data) => ws.send(data) },
 * });
 * console.log(`listening on ${server.port}`);
 * ```
 *
 * @example HTTP and WebSocket on one port
 * ```ts ignore
 * import { serve } from "../../mod.ts";
 *
 * serve<{ name: string }>({
 *   port: 8000,
 *   fetch(request, server) {
 *     if (new URL(request.url).pathname === "/ws") {
 *       server.upgrade(request, { data: { name: "guest" } });
 *       return;
 *     }
 *     return new Response("hello");
 *   },
 *   websocket: { open: (ws) => ws.send(`welcome ${ws.data.name}`) },
 * });
 * ```
 *
 * @throws {SyscallError} when the address cannot be bound (`EADDRINUSE`, `EACCES`); nothing
 * is left open then.
 * @throws {HandshakeError} `INVALID_OPTION` when `maxHeaderBytes` is not an integer >= 16.
 */
export function serve<T = unknown>(options: ServeOptions<T> = {}): Server<T> {
  return new Server<T>(options);
}

/** @ignore Re-exported for the server tests. */
export { FdwsError };

/**
 * The WebSocket server: a listening socket and its pending handshakes on the same poller
 * as the connections of a `WebSocketManager`, with a `serve()` shaped like `Deno.serve`
 * and `Bun.serve`.
 *
 * @module
 */

import { Connection } from "../core/connection.ts";
import type { IoLoop } from "../core/io_loop.ts";
import {
  attachConnection,
  loopOf,
  type ManagerOptions,
  WebSocketManager,
} from "../core/manager.ts";
import { bindConnection, WebSocket, type WebSocketHandlers } from "../core/websocket.ts";
import { recvInto, sendFrom } from "../net/io.ts";
import { closeFd, listenTcp, type NetAddr, shutdownFd } from "../net/tcp.ts";
import { Interest } from "../poller/poller.ts";
import { DEFAULT_MAX_HEADER_BYTES } from "../protocol/http/head.ts";
import {
  type DeflateServerOptions,
  type ResolvedServerOptions,
  resolveServerOptions,
} from "../protocol/deflate/options.ts";
import { negotiateServer, type ServerNegotiation } from "../protocol/deflate/server.ts";
import { threadContext } from "../deflate/contexts.ts";
import { SessionInflater } from "../deflate/inflater.ts";
import { DeflateSession } from "../deflate/session.ts";
import {
  buildErrorResponse,
  buildUpgradeResponse,
  selectProtocol,
  serializeResponse,
  UPGRADE_ANSWER_LENGTH,
  validateUpgrade,
} from "../protocol/handshake/server.ts";
import {
  bodyFraming,
  isUpgradeRequest,
  type ParsedRequest,
  toRequest,
} from "../protocol/http/request.ts";
import { TlsError } from "../ffi/openssl.ts";
import { plainTransport } from "../transport/plain.ts";
import { TlsTransport } from "../transport/tls.ts";
import {
  type TlsReloadOptions,
  TlsServerContext,
  type TlsServerOptions,
} from "../transport/tls/server_context.ts";
import type { Transport } from "../transport/transport.ts";
import { HttpConnection, type HttpConnectionOwner } from "./http_connection.ts";
import { RequestParsers } from "./request_parsers.ts";
import { ListenerTarget } from "./listener.ts";
import { groupPrometheusText, prometheusText } from "./metrics.ts";
import type { ServerStats } from "./server_stats.ts";
import {
  type ClusterOptions,
  type ClusterRole,
  joinCluster,
  type WorkerGroup,
} from "./cluster/cluster.ts";

/** What a `fetch` handler may return. */
export type FetchResult = Response | undefined | void;

/** Options of {@link serve}. */
export interface ServeOptions<T = unknown> extends ManagerOptions<T>, ClusterOptions {
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
  /**
   * Time a client has to complete its request (ms), then 408; also the time a `fetch`
   * handler has to answer or upgrade, then 503. Default 10,000.
   */
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
  /**
   * On SIGINT/SIGTERM: stop accepting, close every connection with 1001, then run the
   * given cleanup (awaited) if this is a function, and exit 0. A second signal while the
   * closing handshakes run terminates the connections still waiting instead of waiting for
   * the close timeout (5 s); cleanup and exit 0 follow as before. Default false.
   */
  signals?: boolean | ((signal: "SIGINT" | "SIGTERM") => void | Promise<void>);
  /** Shuts the server down (as `shutdown()`) when aborted. */
  signal?: AbortSignal;
  /**
   * Origins allowed to open a WebSocket (compared with the `Origin` header, ignoring
   * case); an upgrade from another origin gets 403. Requests without `Origin` (not from a
   * browser) are allowed. Default: every origin.
   */
  origins?: readonly string[];
  /**
   * Subprotocols the server speaks, by preference: the first of them that the client
   * offered is selected when the upgrade does not name one. Default: none selected.
   */
  protocols?: readonly string[];
  /**
   * Picks the subprotocol among those the client offered (`null`: none); overrides
   * `protocols`. Runs for every upgrade that does not name one itself.
   */
  selectProtocol?: (offered: readonly string[], request: Request) => string | null;
  /**
   * Without a `fetch` handler: decides on each upgrade (after `origins`). `true` accepts,
   * `false` refuses with 403, a `Response` is sent as the answer, an object accepts with
   * those options (`data`, `headers`, `protocol`). May return a promise; it has the
   * handshake timeout to settle.
   */
  verify?: (
    request: Request,
    server: Server<T>,
  ) => boolean | Response | UpgradeOptions<T> | Promise<boolean | Response | UpgradeOptions<T>>;
  /**
   * Answers `GET` on this path with the server's metrics in the Prometheus text format;
   * with `workers`, every worker's, each series labelled `worker="<index>"`.
   */
  metricsPath?: string;
  /**
   * permessage-deflate (RFC 7692): `true` accepts every valid offer with the defaults
   * (`"shared"` mode: no compressor memory per connection, a broadcast compressed once),
   * or options (`"dedicated"` mode with a bounded window, a size threshold, levels).
   * Default off.
   */
  perMessageDeflate?: boolean | DeflateServerOptions;
  /**
   * Serve `wss://` (and `https://` to `fetch`): the certificate chain (leaf first) as PEM
   * text or a file path. With `key`. A certificate or key that cannot be read or does not
   * match fails `serve()` with a `TlsError`.
   */
  cert?: string | Uint8Array;
  /** The private key of `cert` (PEM text or a file path). */
  key?: string | Uint8Array;
  /**
   * The other TLS settings (SNI certificates, ALPN, minimum version, kTLS, passphrase);
   * `cert` and `key` may be given here too.
   */
  tls?: Partial<TlsServerOptions>;
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

/** Pending upgrade state attached to the `Request` given to `fetch`. */
interface UpgradeTicket<T> {
  key: string;
  offered: string[];
  chosen: UpgradeOptions<T> | null;
  extension: ServerNegotiation | null;
}

/**
 * A running server. Created by {@link serve}.
 *
 * @typeParam T Type of `ws.data`.
 *
 * @example Count what the server answered
 * ```ts
 * import { serve } from "./serve.ts";
 *
 * const server = serve({ hostname: "127.0.0.1", port: 0 });
 * console.log(server.stats.accepted); // 0
 * await server.shutdown();
 * ```
 */
export class Server<T = unknown> {
  /** The manager running this server's connections. */
  readonly manager: WebSocketManager<T>;
  /** The bound address. */
  readonly address: NetAddr;
  /** Counters. */
  readonly stats: ServerStats = {
    accepted: 0,
    upgraded: 0,
    responses: {},
    droppedAtLimit: 0,
    tlsHandshakeFailures: 0,
  };
  /** Resolves when the server has shut down. */
  readonly finished: Promise<void>;

  readonly #loop: IoLoop;
  readonly #maxBody: number;
  readonly #maxConnections: number;
  readonly #fetch: ServeOptions<T>["fetch"];
  readonly #verify: ServeOptions<T>["verify"];
  readonly #origins: Set<string> | null;
  readonly #protocols: readonly string[];
  readonly #selectProtocol: ServeOptions<T>["selectProtocol"];
  readonly #metricsPath: string | null;
  readonly #tls: TlsServerContext | null;
  readonly #deflate: ResolvedServerOptions | null;
  readonly #wsClass: new () => WebSocket<T>;
  readonly #listener: ListenerTarget | null;
  readonly #cluster: ClusterRole<ServerStats> | null;
  readonly #pending = new Set<HttpConnection>();
  readonly #tickets = new WeakMap<Request, UpgradeTicket<T>>();
  readonly #finished = Promise.withResolvers<void>();
  readonly #owner: HttpConnectionOwner;
  #shuttingDown: Promise<void> | null = null;
  #signalHandlers: [() => void, () => void] | null = null;
  #unwatchedReported = false;

  /**
   * Use {@link serve}.
   * @param options See {@link ServeOptions}.
   */
  constructor(options: ServeOptions<T>) {
    // Checked here, once (HandshakeError): the parsers of every connection are built from it.
    const parsers = new RequestParsers(options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
    const deflate = options.perMessageDeflate ?? false;
    this.#deflate = deflate === false
      ? null
      : resolveServerOptions(deflate === true ? {} : deflate);
    // Certificates are read now: a bad one fails serve(), not the first client.
    this.#tls = tlsContext(options);
    this.#maxBody = options.maxBodySize ?? 1024 * 1024;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#fetch = options.fetch;
    this.#verify = options.verify;
    this.#origins = options.origins === undefined
      ? null
      : new Set(options.origins.map((o) => o.toLowerCase()));
    this.#protocols = options.protocols ?? [];
    this.#selectProtocol = options.selectProtocol;
    this.#metricsPath = options.metricsPath ?? null;
    this.#wsClass = options.webSocketClass ?? (WebSocket as new () => WebSocket<T>);
    this.finished = this.#finished.promise;
    const handlers = options.websocket ?? options.handlers;
    const ownManager = options.manager === undefined;
    let cluster: ClusterRole<ServerStats> | null;
    try {
      // With `workers`: this thread's part in the group (the main thread, or worker i).
      cluster = joinCluster<ServerStats>(options);
      this.manager = options.manager ?? new WebSocketManager<T>({
        ...options,
        handlers,
        ...(cluster === null ? {} : { backplane: cluster.backplane }),
      });
    } catch (err) {
      // Invalid options: the certificates read above are released too.
      this.#tls?.close();
      throw err;
    }
    this.#cluster = cluster;
    const loop = loopOf(this.manager);
    this.#loop = loop;
    this.#owner = {
      loop,
      parsers,
      handshakeTimeout: options.handshakeTimeout ?? 10_000,
      request: (conn, req) => this.#onRequest(conn, req),
      body: (conn, req, body) => this.#runFetch(conn, req, body),
      responded: (status) => {
        const responses = this.stats.responses;
        responses[status] = (responses[status] ?? 0) + 1;
      },
      forget: (conn) => {
        this.#pending.delete(conn);
        loop.removeTarget(conn);
      },
      handshakeFailed: () => {
        this.stats.tlsHandshakeFailures++;
      },
    };
    let target: ListenerTarget | null = null;
    let address: NetAddr;
    try {
      if (cluster !== null) {
        // The group's port belongs to the group (held by the main thread, then listened
        // on by every worker, or accepted by the main thread).
        address = cluster.listen();
      } else {
        const listener = listenTcp({
          hostname: options.hostname ?? "0.0.0.0",
          port: options.port ?? 8080,
          backlog: options.backlog,
          reusePort: options.reusePort,
          ipv6Only: options.ipv6Only,
        });
        target = new ListenerTarget(
          loop,
          listener,
          (fd, host, port) => this.#onAccept(fd, host, port),
          this.stats,
        );
        loop.addTarget(target, Interest.READABLE);
        address = listener.address;
      }
    } catch (err) {
      // EADDRINUSE and friends: release what was created (the manager's poller holds
      // descriptors too) instead of leaking it with every failed serve().
      if (target !== null) {
        loop.removeTarget(target);
        target.close();
      }
      if (ownManager) void this.manager.join();
      this.#tls?.close();
      throw err;
    }
    if (!ownManager && handlers !== undefined) this.manager.handlers = handlers;
    try {
      this.manager.start();
    } catch (err) {
      // The backplane refused its options: release the listener, the group's port, the
      // poller and the certificates.
      if (target !== null) {
        loop.removeTarget(target);
        target.close();
      }
      cluster?.abandon();
      if (ownManager) void this.manager.join();
      this.#tls?.close();
      throw err;
    }
    this.#listener = target;
    this.address = address;
    const signals = options.signals;
    if (signals && (cluster === null || cluster.signals)) {
      const cleanup = typeof signals === "function" ? signals : null;
      let signalled = false;
      const handler = (signal: "SIGINT" | "SIGTERM"): void => {
        if (signalled) {
          // Asked again while the closing handshakes run (a second Ctrl-C, a supervisor
          // repeating its SIGTERM): stop waiting for them, but still clean up and exit 0.
          this.#hurry();
          return;
        }
        signalled = true;
        this.shutdown()
          .then(() => cleanup?.(signal))
          .catch((err) => console.error("fdws: the signal cleanup failed:", err))
          .finally(() => Deno.exit(0));
      };
      const onInt = (): void => handler("SIGINT");
      const onTerm = (): void => handler("SIGTERM");
      this.#signalHandlers = [onInt, onTerm];
      Deno.addSignalListener("SIGINT", onInt);
      if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onTerm);
    }
    const abort = options.signal;
    if (abort !== undefined) {
      const onAbort = (): void => void this.shutdown();
      if (abort.aborted) queueMicrotask(onAbort);
      else abort.addEventListener("abort", onAbort, { once: true });
    }
    // A manager stopped directly (not through shutdown()) also ends the server.
    this.manager.join().then(
      () => {
        this.#removeSignals();
        this.#finished.resolve();
      },
      () => {
        // The loop itself failed (the manager reported it): end the server.
        this.#removeSignals();
        this.#finished.resolve();
      },
    );
    if (cluster === null) {
      options.onListen?.(this.address);
      return;
    }
    cluster.start({
      manager: this.manager as WebSocketManager<unknown>,
      stats: this.stats,
      accept: (fd, host, port) => this.#onAccept(fd, host, port),
      shutdown: (o) => this.shutdown(o),
      snapshot: () => ({
        connections: this.manager.size,
        pendingHandshakes: this.#pending.size,
        bufferedBytes: this.manager.bufferedAmount,
        server: this.stats,
        manager: this.manager.stats,
        backplane: this.manager.backplane?.stats ?? null,
      }),
      reportError: (error) => loop.reportError(error),
      reloadTls: (o) => this.#tls?.reload(o),
      onListen: options.onListen,
    });
  }

  #removeSignals(): void {
    if (this.#signalHandlers === null) return;
    const [onInt, onTerm] = this.#signalHandlers;
    Deno.removeSignalListener("SIGINT", onInt);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onTerm);
    this.#signalHandlers = null;
  }

  /** The bound port. */
  get port(): number {
    return this.address.port;
  }

  /** The bound address text. */
  get hostname(): string {
    return this.address.hostname;
  }

  /** `wss://host:port/` or `ws://host:port/`. */
  get url(): string {
    const host = this.address.hostname.includes(":")
      ? `[${this.address.hostname}]`
      : this.address.hostname;
    return `${this.#tls === null ? "ws" : "wss"}://${host}:${this.address.port}/`;
  }

  /**
   * Replaces the certificate and key (and SNI certificates) without a restart: new
   * connections get the new ones, open ones keep theirs. With `workers`, call it in the
   * main thread: every worker reloads (workers started later too).
   *
   * @throws {TlsError} when the new ones cannot be read or do not match (the old ones
   * stay); `NOT_TLS` when the server does not serve TLS.
   */
  reloadTls(options: TlsReloadOptions = {}): void {
    if (this.#tls === null) throw new TlsError("NOT_TLS", "this server does not serve TLS");
    // Here first: certificates that cannot be used throw before any worker is told.
    this.#tls.reload(options);
    this.#cluster?.reloadTls(options);
  }

  /**
   * With `workers`: the group (`role`, `index`, `ready`, `stats()`); null otherwise. In the
   * main thread this server accepts no client itself: its manager publishes to every
   * worker, and `shutdown()` drains them all.
   */
  get workers(): WorkerGroup<ServerStats> | null {
    return this.#cluster?.group ?? null;
  }

  /** Connections still in their HTTP phase. */
  get pendingHandshakes(): number {
    return this.#pending.size;
  }

  /**
   * Sends a message to every subscriber of `topic` (on this server's manager, and through
   * its backplane to other workers and hosts).
   * @returns how many connections of this manager it was queued for.
   */
  publish(
    topic: string,
    data: string | ArrayBufferView | ArrayBuffer,
    options?: { binary?: boolean; compress?: boolean },
  ): number {
    return this.manager.publish(topic, data, options);
  }

  /** Number of this manager's subscribers of `topic`. */
  subscriberCount(topic: string): number {
    return this.manager.subscriberCount(topic);
  }

  /**
   * This thread's counters in the Prometheus text format. With `workers`, `metricsPath`
   * answers for the whole group instead (every series with a `worker` label).
   */
  metrics(): string {
    const s = this.stats;
    return prometheusText({
      manager: this.manager.stats,
      connections: this.manager.size,
      bufferedBytes: this.manager.bufferedAmount,
      accepted: s.accepted,
      upgraded: s.upgraded,
      pendingHandshakes: this.#pending.size,
      responses: s.responses,
      droppedAtLimit: s.droppedAtLimit,
      tlsHandshakeFailures: s.tlsHandshakeFailures,
      backplane: this.manager.backplane?.stats ?? null,
    });
  }

  /** Shuts the server down: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
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
      // The signal listeners stay until the end: a second signal meanwhile must reach
      // #hurry(), not the default action that would kill the process mid-shutdown.
      if (this.#listener !== null) {
        this.#loop.removeTarget(this.#listener);
        this.#listener.close();
      }
      // Main thread: stop accepting, drain every worker. Worker: stop listening.
      await this.#cluster?.stopAccepting(options);
      for (const conn of [...this.#pending]) conn.close();
      await this.manager.closeAll(
        options.code ?? 1001,
        options.reason ?? "server shutting down",
        options.timeout ?? 5_000,
      );
      this.manager.stop();
      await this.manager.join();
      this.#tls?.close();
      this.#removeSignals();
      this.#finished.resolve();
    })();
    return this.#shuttingDown;
  }

  /** Ends a running shutdown's wait: terminates the connections whose close is pending. */
  #hurry(): void {
    for (const ws of this.manager) ws.terminate();
  }

  #onAccept(fd: number, host: string, port: number): void {
    this.stats.accepted++;
    let transport: Transport = plainTransport;
    if (this.#tls !== null) {
      try {
        transport = TlsTransport.accept(this.#tls, fd);
      } catch (err) {
        // No TLS session for it (out of memory, the context closed): this client only.
        this.stats.tlsHandshakeFailures++;
        this.#loop.reportError(err);
        closeFd(fd);
        return;
      }
    }
    const conn = new HttpConnection(this.#owner, fd, transport, host, port);
    try {
      this.#loop.addTarget(conn, Interest.READABLE);
    } catch (err) {
      // The poller cannot watch this descriptor (select: fd >= FD_SETSIZE). Refuse the
      // connection at once, as best we can without waiting, rather than leaving an
      // unwatched descriptor behind.
      if (transport.kind === "tls") {
        this.#reportUnwatched(err);
        transport.close(fd);
      } else {
        this.#refuseUnwatched(fd, err);
      }
      return;
    }
    this.#pending.add(conn);
    if (this.manager.size + this.#pending.size > this.#maxConnections) {
      conn.respond(buildErrorResponse(503, { body: "too many connections" }), 503);
      return;
    }
    conn.start();
  }

  #reportUnwatched(err: unknown): void {
    if (!this.#unwatchedReported) {
      // Once per server: the configuration (poller, descriptor limit) needs attention.
      this.#unwatchedReported = true;
      this.#loop.reportError(err);
    }
  }

  /** Answers 503 without waiting (one non-blocking send) and closes `fd`. */
  #refuseUnwatched(fd: number, err: unknown): void {
    this.#reportUnwatched(err);
    const stats = this.stats.responses;
    stats[503] = (stats[503] ?? 0) + 1;
    const bytes = buildErrorResponse(503, { body: "server at capacity" });
    sendFrom(fd, bytes, bytes.length);
    shutdownFd(fd, "write");
    // Drop what the request already sent, so that the close is not a reset that would
    // destroy the answer before the client reads it.
    recvInto(fd, this.#loop.readBuffer, this.#loop.readLength);
    closeFd(fd);
  }

  /** A complete request head arrived. */
  #onRequest(conn: HttpConnection, req: ParsedRequest): void {
    if (isUpgradeRequest(req)) {
      const v = validateUpgrade(req);
      if (!v.ok) {
        conn.respond(
          buildErrorResponse(v.status, { headers: v.headers, body: v.message }),
          v.status,
        );
        return;
      }
      const origin = req.get("origin");
      if (this.#origins !== null && origin !== null && !this.#origins.has(origin.toLowerCase())) {
        conn.respond(buildErrorResponse(403, { body: "origin not allowed" }), 403);
        return;
      }
      let extension: ServerNegotiation | null = null;
      if (this.#deflate !== null) {
        extension = negotiateServer(req.getAll("sec-websocket-extensions"), this.#deflate);
        if (extension.kind === "malformed") {
          const body = `malformed Sec-WebSocket-Extensions: ${extension.reason}`;
          conn.respond(buildErrorResponse(400, { body }), 400);
          return;
        }
      }
      const decide = this.#fetch ?? this.#verify;
      if (decide === undefined && this.#selectProtocol === undefined) {
        this.#accept(conn, req, v.key, { protocol: this.#pickProtocol(v.protocols) }, extension);
        return;
      }
      let request: Request;
      try {
        request = toRequest(req, { remote: { hostname: conn.host, port: conn.port } });
      } catch (err) {
        conn.respond(buildErrorResponse(400, { body: (err as Error).message }), 400);
        return;
      }
      if (decide === undefined) {
        const protocol = this.#pickProtocol(v.protocols, request);
        this.#accept(conn, req, v.key, { protocol }, extension);
        return;
      }
      this.#tickets.set(request, { key: v.key, offered: v.protocols, chosen: null, extension });
      conn.awaitHandler();
      this.#startFetch(conn, request, req, v.key);
      return;
    }
    if (this.#metricsPath !== null && req.method === "GET") {
      const path = req.target.split("?", 1)[0];
      if (path === this.#metricsPath) {
        if (this.#cluster === null) conn.respond(metricsResponse(this.metrics()), 200);
        else this.#respondGroupMetrics(conn, this.#cluster.group);
        return;
      }
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
      conn.awaitHandler();
      this.#runFetch(conn, req, null);
    }
  }

  /**
   * A worker answers a scrape for the whole group: the scraper reaches whichever worker
   * the kernel gives it the connection, and one worker's counters would jump from scrape
   * to scrape. Without an answer from the main thread in time, 503 (the handshake timeout
   * bounds the wait too).
   */
  #respondGroupMetrics(conn: HttpConnection, group: WorkerGroup<ServerStats>): void {
    conn.awaitHandler();
    group.stats().then(
      (stats) => {
        if (conn.phase === "handler") {
          conn.respond(metricsResponse(groupPrometheusText(stats)), 200);
        }
      },
      (err) => {
        this.#loop.reportError(err);
        if (conn.phase === "handler") {
          conn.respond(buildErrorResponse(503, { body: "metrics unavailable" }), 503);
        }
      },
    );
  }

  /** The subprotocol the server picks among `offered` (`selectProtocol`, else `protocols`). */
  #pickProtocol(offered: readonly string[], request?: Request): string | undefined {
    if (offered.length === 0) return undefined;
    const select = this.#selectProtocol;
    if (select !== undefined && request !== undefined) {
      const chosen = select(offered, request);
      return chosen === null ? undefined : chosen;
    }
    for (const p of this.#protocols) if (offered.includes(p)) return p;
    return undefined;
  }

  /** Runs `fetch` for a plain HTTP request. */
  #runFetch(conn: HttpConnection, req: ParsedRequest, body: Uint8Array | null): void {
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
    conn: HttpConnection,
    request: Request,
    req: ParsedRequest,
    key: string | null,
  ): void {
    this.#callFetch(conn, request, req, key).catch((err) => {
      this.#loop.reportError(err);
      conn.close();
    });
  }

  async #callFetch(
    conn: HttpConnection,
    request: Request,
    req: ParsedRequest,
    key: string | null,
  ): Promise<void> {
    let result: FetchResult | boolean | UpgradeOptions<T>;
    try {
      result = this.#fetch !== undefined
        ? await this.#fetch(request, this)
        : await this.#verify!(request, this);
    } catch (err) {
      this.#loop.reportError(err);
      if (conn.phase === "handler") {
        conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
      }
      return;
    }
    // Answered meanwhile (the handler timed out, or the client went away).
    if (conn.phase !== "handler") return;
    if (key !== null) {
      const ticket = this.#tickets.get(request)!;
      this.#tickets.delete(request);
      let chosen = ticket.chosen;
      if (chosen === null && this.#fetch === undefined) {
        // verify(): true or options accept, false refuses, a Response answers.
        if (result === true) chosen = {};
        else if (result === false || result === undefined) {
          conn.respond(buildErrorResponse(403, { body: "upgrade refused" }), 403);
          return;
        } else if (!(result instanceof Response)) chosen = result as UpgradeOptions<T>;
      }
      if (chosen !== null) {
        if (chosen.protocol === undefined) {
          chosen = { ...chosen, protocol: this.#pickProtocol(ticket.offered, request) };
        } else {
          try {
            selectProtocol(ticket.offered, chosen.protocol);
          } catch (err) {
            this.#loop.reportError(err);
            conn.respond(buildErrorResponse(500, { body: "invalid subprotocol" }), 500);
            return;
          }
        }
        this.#accept(conn, req, key, chosen, ticket.extension);
        return;
      }
    }
    if (result instanceof Response) {
      try {
        const bytes = await serializeResponse(result, { head: req.method === "HEAD" });
        if (conn.phase === "handler") conn.respond(bytes, result.status);
      } catch (err) {
        this.#loop.reportError(err);
        if (conn.phase === "handler") {
          conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
        }
      }
      return;
    }
    conn.respond(buildErrorResponse(500, { body: "the fetch handler returned no response" }), 500);
  }

  #accept(
    conn: HttpConnection,
    req: ParsedRequest,
    key: string,
    opts: UpgradeOptions<T>,
    extension: ServerNegotiation | null,
  ): void {
    const deflate = extension?.kind === "accepted" ? extension : null;
    let preface: Uint8Array;
    try {
      preface = buildUpgradeResponse({
        key,
        protocol: opts.protocol ?? null,
        headers: opts.headers,
        extensions: deflate?.response ?? null,
      }, answerScratch);
    } catch (err) {
      this.#loop.reportError(err);
      conn.respond(buildErrorResponse(500, { body: "invalid upgrade response" }), 500);
      return;
    }
    // Build the connection object while the HTTP connection still owns the descriptor: a
    // throwing webSocketClass (or data setter) then gets a 500, not a leaked socket.
    let ws: WebSocket<T>;
    let wsConn: Connection<WebSocket<T>>;
    try {
      ws = new this.#wsClass();
      wsConn = new Connection(
        conn.fd,
        conn.transport,
        "server",
        ws,
        intern(req.target),
        conn.host,
        conn.port,
      );
      wsConn.protocol = opts.protocol ?? "";
      wsConn.headerText = intern(req.text(HANDSHAKE_ONLY));
      if (deflate !== null) {
        const o = this.#deflate!;
        const session = new DeflateSession(
          "server",
          deflate.params,
          threadContext({
            level: o.level,
            memLevel: o.memLevel,
            threshold: o.threshold,
            maxMessageSize: this.manager.maxMessageSize,
          }),
        );
        wsConn.deflater = session;
        wsConn.inflater = new SessionInflater(session);
        wsConn.extensions = deflate.response;
      }
      if ("data" in opts) ws.data = opts.data as T;
      bindConnection(ws, wsConn);
    } catch (err) {
      this.#loop.reportError(err);
      conn.respond(buildErrorResponse(500, { body: "internal server error" }), 500);
      return;
    }
    conn.handOver();
    this.stats.upgraded++;
    attachConnection(this.manager, wsConn, conn.leftover, preface);
  }
}

/**
 * Request headers that only served the handshake: not kept with the connection (memory
 * per connection counts; the application has no use for a spent key).
 */
const HANDSHAKE_ONLY: ReadonlySet<string> = new Set([
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
]);

/** The TLS context `options` ask for, or null for plain TCP. */
function tlsContext<T>(options: ServeOptions<T>): TlsServerContext | null {
  const tls = options.tls;
  const cert = options.cert ?? tls?.cert;
  const key = options.key ?? tls?.key;
  if (cert === undefined && key === undefined && tls === undefined) return null;
  if (cert === undefined || key === undefined) {
    throw new TlsError("CERT_MISSING", "TLS needs both `cert` and `key`");
  }
  return new TlsServerContext({ ...tls, cert, key });
}

/** A 200 answer with `text` in the Prometheus text format. */
function metricsResponse(text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const head = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n" +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
  );
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/**
 * Where the common `101` answer is built: the manager copies it into its outbox before
 * `#accept` returns, so one buffer serves every handshake of this thread.
 */
const answerScratch = new Uint8Array(UPGRADE_ANSWER_LENGTH);

/**
 * Request targets and header texts kept by connections, shared when equal: most clients
 * of a server ask for the same few paths with the same few header sets, and each
 * connection keeps them for its whole life.
 */
const interned = new Map<string, string>();

function intern(text: string): string {
  if (text.length > 256) return text;
  const known = interned.get(text);
  if (known !== undefined) return known;
  if (interned.size >= 1024) interned.clear();
  interned.set(text, text);
  return text;
}

/**
 * Starts a WebSocket server and returns it once listening.
 *
 * @example Echo server
 * ```ts
 * import { serve } from "./serve.ts";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   websocket: { message: (ws, data) => void ws.send(data as string | Uint8Array) },
 * });
 * console.log(`listening on ${server.port}`);
 * await server.shutdown();
 * ```
 *
 * @example HTTP and WebSocket on one port
 * ```ts
 * import { serve } from "./serve.ts";
 *
 * const server = serve<{ name: string }>({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   fetch(request, server) {
 *     if (new URL(request.url).pathname === "/ws") {
 *       server.upgrade(request, { data: { name: "guest" } });
 *       return;
 *     }
 *     return new Response("hello");
 *   },
 *   websocket: { open: (ws) => void ws.send(`welcome ${ws.data.name}`) },
 * });
 * await server.shutdown();
 * ```
 *
 * @throws {SyscallError} when the address cannot be bound (`EADDRINUSE`, `EACCES`); nothing
 * is left open then.
 * @throws {HandshakeError} `INVALID_OPTION` when `maxHeaderBytes` is not an integer >= 16.
 */
export function serve<T = unknown>(options: ServeOptions<T> = {}): Server<T> {
  return new Server<T>(options);
}

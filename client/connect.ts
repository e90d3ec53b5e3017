/**
 * The WebSocket client: `connect()` opens a `ws://` or `wss://` connection on the same machinery as
 * the server (raw non-blocking sockets, the manager's poller, the manager's corked write
 * path) and resolves with an open {@link WebSocket} whose frames are masked.
 *
 * Connections opened without a `manager` run on a shared client manager created on
 * demand and stopped once its last connection has closed, so a script that only uses
 * clients exits by itself when it has closed its sockets.
 *
 * @module
 */

import type { WebSocketManager } from "../core/manager.ts";
import type { WebSocket, WebSocketHandlers } from "../core/websocket.ts";
import { type ResolvedAddress, resolveHost } from "../net/resolve.ts";
import { buildClientRequest, generateKey } from "../protocol/handshake/client.ts";
import { buildOffer } from "../protocol/deflate/client.ts";
import {
  type DeflateClientOptions,
  resolveClientOptions,
  type ResolvedClientOptions,
} from "../protocol/deflate/options.ts";
import { type Attempt, Connecting } from "./connecting.ts";
import { ConnectError, toConnectError } from "./errors.ts";
import { type Lease, sharedLease, userLease } from "./shared_manager.ts";
import {
  defaultClientContext,
  TlsClientContext,
  type TlsClientOptions,
} from "../transport/tls/client_context.ts";

/**
 * Options of {@link connect}.
 *
 * @typeParam T Type of `ws.data`.
 *
 * @example Offer subprotocols, send a header, bound the wait
 * ```ts
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
  /**
   * Offer permessage-deflate (RFC 7692): `true` with the defaults, or what to ask for.
   * Default off.
   */
  perMessageDeflate?: boolean | DeflateClientOptions;
  /**
   * `wss:` only: certificate authorities to trust instead of the system store (PEM text or
   * a file path); short for `tls: { ca }`.
   */
  ca?: string | Uint8Array;
  /**
   * `wss:` only: the TLS settings. Connections given the same options object share one
   * TLS context (its certificates are parsed once).
   */
  tls?: TlsClientOptions;
}

// ------------------------------------------------------------------ connect()

interface Target {
  url: URL;
  host: string;
  port: number;
  secure: boolean;
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
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new ConnectError("INVALID_URL", `expected a ws: or wss: URL, got ${url.protocol}`, {
      url: url.href,
    });
  }
  let host = url.hostname;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") {
    throw new ConnectError("INVALID_URL", "the URL has no host", { url: url.href });
  }
  const secure = url.protocol === "wss:";
  return { url, host, port: url.port === "" ? (secure ? 443 : 80) : Number(url.port), secure };
}

/**
 * TLS client contexts kept for reuse, by `ca` text or by options object: a context parses
 * its certificates once. Bounded; an evicted context may still be in use by a connect in
 * progress, so it is released only once unreachable (its sessions keep their own native
 * reference to it anyway).
 */
const contexts = new Map<string | TlsClientOptions, TlsClientContext>();

/** The TLS client context of a `wss:` connection. */
function clientContext<T>(options: ConnectOptions<T>): TlsClientContext {
  const tls = options.tls;
  const ca = options.ca;
  if (tls === undefined && ca === undefined) return defaultClientContext();
  const key = tls ?? (typeof ca === "string" ? ca : null);
  let context = key === null ? undefined : contexts.get(key);
  if (context === undefined) {
    context = new TlsClientContext({ ...tls, ca: ca ?? tls?.ca });
    if (key !== null) {
      if (contexts.size >= 16) contexts.clear();
      contexts.set(key, context);
    }
  }
  return context;
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
 * Opens a WebSocket connection to a `ws://` or `wss://` URL and resolves with the open connection.
 *
 * The host may be an IPv4 or IPv6 literal (`ws://[::1]:9001/`) or a name resolved by the
 * system resolver (addresses are tried in order until one accepts the TCP connection).
 * The TCP connection is non-blocking and polled by the manager; the upgrade request is
 * sent and the answer validated (status 101, `Sec-WebSocket-Accept`, a subprotocol among
 * those offered, at most the permessage-deflate parameters offered), then the descriptor becomes a managed client
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
 * `wss:` runs TLS through OpenSSL: the server's chain is verified against the system's
 * trusted certificates (or `ca`), its name against the URL's host, and the host is sent
 * as SNI. Needs `--allow-ffi`.
 *
 * @example Echo round trip
 * ```ts
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
 * ```ts
 * import { connect, serve, WebSocketManager } from "../mod.ts";
 *
 * const manager = new WebSocketManager();
 * const server = serve({
 *   manager,
 *   hostname: "127.0.0.1",
 *   port: 9002,
 *   websocket: { message: (ws, d) => void ws.send(d as string) },
 * });
 * const a = await connect("ws://127.0.0.1:9002/", {
 *   manager,
 *   handlers: { message: (_ws, data) => console.log("a got", data) },
 * });
 * a.send("ping");
 * await server.shutdown();
 * ```
 *
 * @param url A `ws:` or `wss:` URL (`http:` is read as `ws:`, `https:` as `wss:`).
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
  const deflateOption = options.perMessageDeflate ?? false;
  let deflate: ResolvedClientOptions | null = null;
  try {
    if (deflateOption !== false) {
      deflate = resolveClientOptions(deflateOption === true ? {} : deflateOption);
    }
  } catch (err) {
    throw toConnectError(err, href, "");
  }
  const request = buildClientRequest(target.url, key, {
    protocols,
    headers: options.headers,
    extensions: deflate === null ? undefined : buildOffer(deflate),
  });
  const signal = options.signal;
  const aborted = (): ConnectError =>
    new ConnectError("ABORTED", `connect aborted (${href})`, { url: href, cause: signal?.reason });
  if (signal?.aborted) throw aborted();

  let tlsContext: TlsClientContext | null = null;
  if (target.secure) {
    try {
      tlsContext = clientContext(options);
    } catch (err) {
      throw toConnectError(err, href, "");
    }
  }

  const lease: Lease<T> = options.manager !== undefined
    ? userLease(options.manager)
    : sharedLease<T>();
  const m = lease.manager;

  let current: Connecting<T> | null = null;
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
    lease,
    handlers: options.handlers,
    webSocketClass: options.webSocketClass,
    data: "data" in options ? { value: options.data as T } : null,
    maxMessageSize: options.maxMessageSize,
    sharedManager: options.manager === undefined,
    tls: tlsContext === null ? null : { context: tlsContext, servername: target.host },
    deflate,
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
      let hs: Connecting<T>;
      try {
        hs = new Connecting(attempt, address);
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
        // The cancel promise too: a timeout or abort settles this whatever the attempt does.
        return await Promise.race([hs.result.promise, cancel.promise]);
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
    // A context made for this connection alone (CA bytes): its session keeps its own
    // reference.
    if (tlsContext !== null && options.tls === undefined && options.ca instanceof Uint8Array) {
      tlsContext.close();
    }
  }
}

/**
 * One attempt to open a client connection to one address: the non-blocking TCP connect,
 * the transport's own handshake (TLS), the upgrade request and the server's answer, polled
 * by the manager's loop. It settles its `result` exactly once, and owns its descriptor
 * until it hands it to the manager as an open WebSocket.
 *
 * @module
 */

import { CLOSED, Connection } from "../core/connection.ts";
import type { IoLoop, PollTarget } from "../core/io_loop.ts";
import { attachConnection, loopOf } from "../core/manager.ts";
import {
  bindConnection,
  setOwnHandlers,
  WebSocket,
  type WebSocketHandlers,
} from "../core/websocket.ts";
import { SyscallError } from "../ffi/errno.ts";
import type { ResolvedAddress } from "../net/resolve.ts";
import { closeFd, connectTcp, finishConnect } from "../net/tcp.ts";
import { Interest, Ready } from "../poller/poller.ts";
import { validateUpgradeResponse } from "../protocol/handshake/client.ts";
import { acceptResponse, type ClientNegotiation } from "../protocol/deflate/client.ts";
import type { ResolvedClientOptions } from "../protocol/deflate/options.ts";
import { threadContext } from "../deflate/contexts.ts";
import { SessionInflater } from "../deflate/inflater.ts";
import { DeflateSession } from "../deflate/session.ts";
import { FrameParser } from "../protocol/frame/parser.ts";
import { HttpResponseParser, type ParsedResponse } from "../protocol/http/response.ts";
import { plainTransport } from "../transport/plain.ts";
import { TlsTransport } from "../transport/tls.ts";
import type { TlsContext } from "../transport/tls/context.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_FAILED,
  HANDSHAKE_WANT_WRITE,
  IO_FAILED,
  type Transport,
  WOULD_BLOCK,
} from "../transport/transport.ts";
import { ConnectError, toConnectError } from "./errors.ts";
import type { Lease } from "./shared_manager.ts";

/** What every attempt of one `connect()` shares. */
export interface Attempt<T> {
  /** The URL, normalized. */
  readonly url: string;
  /** The TCP port. */
  readonly port: number;
  /** The `Sec-WebSocket-Key` sent. */
  readonly key: string;
  /** The upgrade request, ready to write. */
  readonly request: Uint8Array;
  /** Subprotocols offered. */
  readonly protocols: readonly string[];
  /** The manager the connection runs on. */
  readonly lease: Lease<T>;
  /** Handlers of this connection only, if any. */
  readonly handlers: WebSocketHandlers<T> | undefined;
  /** Class of the connection object. */
  readonly webSocketClass: (new () => WebSocket<T>) | undefined;
  /** Initial `ws.data`, when given. */
  readonly data: { value: T } | null;
  /** Largest message accepted from the server, when it differs from the manager's. */
  readonly maxMessageSize: number | undefined;
  /** True when the lease is the shared manager's (released when the connection closes). */
  readonly sharedManager: boolean;
  /** For `wss:`: the TLS context and the name to verify and send (SNI). */
  readonly tls: { context: TlsContext; servername: string } | null;
  /** The permessage-deflate offer's options, when one was made. */
  readonly deflate: ResolvedClientOptions | null;
}

type Phase = "connecting" | "handshake" | "writing" | "reading" | "done";

/**
 * One TCP connection being opened and its handshake.
 *
 * @example
 * ```ts
 * import { type Attempt, Connecting } from "./connecting.ts";
 *
 * async function tryAddress<T>(attempt: Attempt<T>): Promise<void> {
 *   const one = new Connecting(attempt, { address: "127.0.0.1", family: 4 });
 *   const ws = await one.result.promise;
 *   console.log(ws.protocol);
 * }
 * console.log(typeof tryAddress); // "function"
 * ```
 */
export class Connecting<T> implements PollTarget {
  /** Descriptor. */
  readonly fd: number;
  /** Settles once: the open connection, or why it failed. */
  readonly result: PromiseWithResolvers<WebSocket<T>> = Promise.withResolvers<WebSocket<T>>();
  /** True when it failed before the TCP connection was established (try the next address). */
  retryable = false;
  readonly #attempt: Attempt<T>;
  readonly #address: ResolvedAddress;
  readonly #loop: IoLoop;
  #transport: Transport = plainTransport;
  readonly #parser = new HttpResponseParser();
  #phase: Phase = "connecting";
  #sent = 0;
  #registered = false;

  /**
   * Starts the TCP connection; throws (with nothing left open) when that fails at once.
   * @param attempt What every attempt shares.
   * @param address The address to try.
   */
  constructor(attempt: Attempt<T>, address: ResolvedAddress) {
    this.#attempt = attempt;
    this.#address = address;
    this.#loop = loopOf(attempt.lease.manager);
    this.fd = connectTcp(address.address, attempt.port).fd;
    try {
      // Writable means connected (or failed: SO_ERROR tells), whether or not connect()
      // completed at once.
      this.#loop.addTarget(this, Interest.WRITABLE);
      this.#registered = true;
    } catch (err) {
      closeFd(this.fd);
      throw err;
    }
  }

  /** The poller reports the descriptor ready. */
  onReady(ready: number): void {
    if (this.#phase === "connecting") {
      try {
        // Still connecting: the connect's own outcome decides whether the next address
        // is tried, so wait for it.
        if (!finishConnect(this.fd)) return;
      } catch (err) {
        this.fail(this.#wrap(err), true);
        return;
      }
      this.#phase = "handshake";
      const tls = this.#attempt.tls;
      if (tls !== null) {
        try {
          this.#transport = TlsTransport.connect(tls.context, this.fd, tls.servername);
        } catch (err) {
          this.fail(this.#wrap(err), false);
          return;
        }
      }
    }
    if (this.#phase === "handshake") {
      this.#handshake();
      return;
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
    this.#transport.close(this.fd);
    this.result.reject(err);
  }

  #unregister(): void {
    if (!this.#registered) return;
    this.#registered = false;
    try {
      this.#loop.removeTarget(this);
    } catch {
      // The poller is already closed: nothing is registered any more.
    }
  }

  #handshake(): void {
    const step = this.#transport.handshake(this.fd);
    if (step === HANDSHAKE_FAILED) {
      const why = this.#transport.lastErrorMessage;
      this.fail(this.#error("HANDSHAKE_FAILED", `transport handshake failed: ${why}`), false);
      return;
    }
    if (step !== HANDSHAKE_DONE) {
      this.#loop.modifyTarget(
        this,
        step === HANDSHAKE_WANT_WRITE ? Interest.WRITABLE : Interest.READABLE,
      );
      return;
    }
    this.#phase = "writing";
    this.#write();
  }

  #write(): void {
    const request = this.#attempt.request;
    const rest = request.length - this.#sent;
    const n = this.#transport.write(this.fd, request.subarray(this.#sent), rest);
    if (n === WOULD_BLOCK) {
      this.#loop.modifyTarget(this, Interest.WRITABLE);
      return;
    }
    if (n === IO_FAILED) {
      this.fail(this.#wrap(new SyscallError("send", this.#transport.lastError)), false);
      return;
    }
    this.#sent += n;
    if (n < rest) return;
    this.#phase = "reading";
    this.#loop.modifyTarget(this, Interest.READABLE);
    this.#read();
  }

  #read(): void {
    const loop = this.#loop;
    const buf = loop.readBuffer;
    for (;;) {
      const n = this.#transport.read(this.fd, buf, loop.readLength);
      if (n === WOULD_BLOCK) return;
      if (n === 0) {
        this.fail(
          this.#error("HANDSHAKE_FAILED", "the server closed the connection before answering"),
          false,
        );
        return;
      }
      if (n === IO_FAILED) {
        this.fail(this.#wrap(new SyscallError("recv", this.#transport.lastError)), false);
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
    const v = validateUpgradeResponse(
      res,
      attempt.key,
      attempt.protocols,
      attempt.deflate !== null,
    );
    if (!v.ok) {
      this.fail(this.#error("HANDSHAKE_FAILED", v.message, 101), false);
      return;
    }
    let deflate: ClientNegotiation | null = null;
    if (attempt.deflate !== null) {
      deflate = acceptResponse(res.getAll("sec-websocket-extensions"), attempt.deflate);
      if (deflate.kind === "failed") {
        this.fail(this.#error("HANDSHAKE_FAILED", deflate.reason, 101), false);
        return;
      }
    }
    this.#handOver(v.protocol ?? "", res, leftover, deflate?.kind === "accepted" ? deflate : null);
  }

  /**
   * Gives the descriptor to the manager as an open client connection. What arrived with
   * the answer and after it is not read until the code awaiting `connect()` has run (and
   * set `onmessage`, say); it is then delivered in order.
   */
  #handOver(
    protocol: string,
    response: ParsedResponse,
    leftover: Uint8Array | null,
    deflate: (ClientNegotiation & { kind: "accepted" }) | null,
  ): void {
    const attempt = this.#attempt;
    this.#unregister();
    this.#phase = "done";
    const WsClass = attempt.webSocketClass ?? (WebSocket as new () => WebSocket<T>);
    let ws: WebSocket<T>;
    let conn: Connection<WebSocket<T>>;
    let session: DeflateSession | null = null;
    try {
      ws = new WsClass();
      conn = new Connection(
        this.fd,
        this.#transport,
        "client",
        ws,
        attempt.url,
        this.#address.address,
        attempt.port,
      );
      conn.protocol = protocol;
      conn.headerText = response.text();
      if (deflate !== null) {
        const o = attempt.deflate!;
        session = new DeflateSession(
          "client",
          deflate.params,
          threadContext({
            level: o.level,
            memLevel: o.memLevel,
            threshold: o.threshold,
            maxMessageSize: attempt.maxMessageSize ?? attempt.lease.manager.maxMessageSize,
          }),
        );
        conn.deflater = session;
        conn.inflater = new SessionInflater(session);
        conn.extensions = response.get("sec-websocket-extensions") ?? "";
      }
      if (attempt.data !== null) ws.data = attempt.data.value;
      if (attempt.handlers !== undefined) setOwnHandlers(ws, attempt.handlers);
      bindConnection(ws, conn);
    } catch (err) {
      // A throwing webSocketClass or data setter, or zlib that cannot be loaded: this
      // connect fails, nothing stays open.
      session?.free();
      this.#transport.close(this.fd);
      this.result.reject(
        this.#error("HANDSHAKE_FAILED", "the connection could not be set up", 101, err),
      );
      return;
    }
    if (attempt.sharedManager) conn.onFinished(() => attempt.lease.release());
    conn.holdReads();
    if (leftover !== null) conn.keepPending(leftover, 0, leftover.length);
    try {
      attachConnection(attempt.lease.manager, conn, null, null);
    } catch (err) {
      // The manager is stopping: it closed the descriptor.
      this.result.reject(this.#error("MANAGER_STOPPED", "the manager is stopping", 101, err));
      return;
    }
    if (attempt.maxMessageSize !== undefined) {
      conn.parser = new FrameParser({ role: "client", maxMessageSize: attempt.maxMessageSize });
      conn.parserPinned = true;
    }
    this.result.resolve(ws);
    this.#loop.schedule(() => {
      conn.releaseReads();
      if (conn.host !== null && conn.state !== CLOSED) conn.host.readAgain(conn);
    });
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

/**
 * One accepted connection until it becomes a WebSocket or gets its HTTP answer: the
 * transport's own handshake (TLS), the request head, a Content-Length body for `fetch`,
 * the wait for the handler, the answer and a lingering close. Every phase has a deadline.
 *
 * @module
 */

import type { IoLoop, PollTarget } from "../core/io_loop.ts";
import { Interest, Ready } from "../poller/poller.ts";
import { buildErrorResponse } from "../protocol/handshake/server.ts";
import type { HttpRequestParser, ParsedRequest } from "../protocol/http/request.ts";
import type { RequestParsers } from "./request_parsers.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_FAILED,
  HANDSHAKE_WANT_WRITE,
  IO_FAILED,
  type Transport,
  WOULD_BLOCK,
} from "../transport/transport.ts";

/** How long an answered connection may linger before it is closed (ms). */
const LINGER_MS = 2_000;
/** Reads per readiness event: a peer that sends without pause cannot hold the loop. */
const READ_ROUNDS = 16;

/** Where an HTTP connection is in its life. */
export type Phase =
  | "handshake"
  | "reading"
  | "body"
  | "handler"
  | "writing"
  | "lingering"
  | "done";

/** What an {@link HttpConnection} asks of the server that accepted it. */
export interface HttpConnectionOwner {
  /** The loop that watches the connection. */
  readonly loop: IoLoop;
  /** Request-head parsers (their limit: larger heads get 431). */
  readonly parsers: RequestParsers;
  /** Time the client has for the transport handshake and its request (ms). */
  readonly handshakeTimeout: number;
  /** A complete request head arrived. */
  request(conn: HttpConnection, req: ParsedRequest): void;
  /** The body announced by `req` arrived. */
  body(conn: HttpConnection, req: ParsedRequest, body: Uint8Array): void;
  /** An answer with `status` went out (statistics). */
  responded(status: number): void;
  /** The connection is done (closed, or handed over as a WebSocket): forget it. */
  forget(conn: HttpConnection): void;
  /** The transport's handshake failed (a plaintext client on a TLS port, an alert). */
  handshakeFailed(conn: HttpConnection): void;
}

/**
 * An accepted connection in its HTTP phase.
 *
 * @example
 * ```ts
 * import { HttpConnection, type HttpConnectionOwner } from "./http_connection.ts";
 * import { plainTransport } from "../transport/plain.ts";
 *
 * declare const owner: HttpConnectionOwner;
 * declare const fd: number;
 * const conn = new HttpConnection(owner, fd, plainTransport, "127.0.0.1", 50123);
 * owner.loop.addTarget(conn, 1); // Interest.READABLE
 * conn.start();
 * ```
 */
export class HttpConnection implements PollTarget {
  /** Descriptor. */
  readonly fd: number;
  /** How bytes cross it. */
  readonly transport: Transport;
  /** Peer address. */
  readonly host: string;
  /** Peer port. */
  readonly port: number;
  /** Current phase. */
  phase: Phase = "handshake";
  /** Bytes that came after the request head (WebSocket frames, or the body's start). */
  leftover: Uint8Array | null = null;
  readonly #owner: HttpConnectionOwner;
  /** Made when the first bytes arrive: most clients send their request a little later. */
  #parser: HttpRequestParser | null = null;
  #deadline: number;
  #out: Uint8Array | null = null;
  #request: ParsedRequest | null = null;
  #body: Uint8Array | null = null;
  #bodyFill = 0;
  /** The handshake asked for writability (the interest must go back to readable). */
  #wantedWrite = false;

  /**
   * @param owner The server.
   * @param fd Accepted non-blocking descriptor (owned from now on).
   * @param transport Its transport.
   * @param host Peer address.
   * @param port Peer port.
   */
  constructor(
    owner: HttpConnectionOwner,
    fd: number,
    transport: Transport,
    host: string,
    port: number,
  ) {
    this.#owner = owner;
    this.fd = fd;
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.#deadline = owner.loop.now() + owner.handshakeTimeout;
  }

  /** The poller reports the descriptor ready. */
  onReady(ready: number): void {
    if (this.phase === "handshake") {
      this.#handshake();
      return;
    }
    if (this.phase === "writing" && ready & Ready.WRITABLE) this.#writeOut();
    if (ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR)) this.#read();
  }

  /** The deadline of the current phase. */
  nextTimer(): number {
    return this.#deadline;
  }

  /**
   * Deadlines: a client too slow to send its request gets 408; a `fetch` handler that does
   * not settle in time gets the client a 503 (and its descriptor back); an answer not
   * read, or a linger not ended, is closed.
   */
  onTimer(now: number): void {
    if (now < this.#deadline) return;
    switch (this.phase) {
      case "handshake":
        this.close();
        return;
      case "reading":
      case "body":
        this.respond(buildErrorResponse(408, { body: "request timeout" }), 408);
        return;
      case "handler":
        this.respond(
          buildErrorResponse(503, { body: "the request handler did not answer in time" }),
          503,
        );
        return;
      case "writing":
      case "lingering":
        this.close();
    }
  }

  /** Starts the transport's handshake (plain TCP has none: reading starts at once). */
  start(): void {
    this.#handshake();
  }

  #handshake(): void {
    const step = this.transport.handshake(this.fd);
    if (step === HANDSHAKE_DONE) {
      this.phase = "reading";
      if (this.#wantedWrite) this.#owner.loop.modifyTarget(this, Interest.READABLE);
      // A TLS handshake may leave the request already read and buffered; plain TCP waits
      // for readiness (the request rarely arrives with the connection).
      if (this.transport.pending) this.#read();
      return;
    }
    if (step === HANDSHAKE_FAILED) {
      this.#owner.handshakeFailed(this);
      this.close();
      return;
    }
    const write = step === HANDSHAKE_WANT_WRITE;
    if (write !== this.#wantedWrite) {
      this.#wantedWrite = write;
      this.#owner.loop.modifyTarget(this, write ? Interest.WRITABLE : Interest.READABLE);
    }
  }

  #read(): void {
    const loop = this.#owner.loop;
    const buf = loop.readBuffer;
    // Bounded: the poller is level-triggered and reports what is left on the next tick.
    for (let round = 0; round < READ_ROUNDS; round++) {
      const n = this.transport.read(this.fd, buf, loop.readLength);
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
    const parsers = this.#owner.parsers;
    const own = this.#parser;
    const r = (own ?? parsers.shared).push(buf, 0, n);
    if (r.kind === "incomplete") {
      if (own === null) this.#parser = parsers.take();
      return;
    }
    this.#parser = null;
    if (r.kind === "error") {
      if (own === null) parsers.recover();
      this.respond(buildErrorResponse(r.status, { body: r.message }), r.status);
      return;
    }
    this.#request = r.request;
    this.leftover = r.consumed < n ? buf.slice(r.consumed, n) : null;
    this.#owner.request(this, r.request);
  }

  /** Waits for the handler: reads nothing meanwhile (frames may follow an upgrade). */
  awaitHandler(): void {
    this.phase = "handler";
    this.#owner.loop.modifyTarget(this, 0);
  }

  /** Starts reading a Content-Length body of `length` bytes for the fetch handler. */
  readBody(length: number): void {
    this.#body = new Uint8Array(length);
    this.#bodyFill = 0;
    this.phase = "body";
    const early = this.leftover;
    this.leftover = null;
    if (early !== null) this.#fillBody(early, 0, early.length);
  }

  #fillBody(buf: Uint8Array, start: number, end: number): void {
    const body = this.#body!;
    const take = Math.min(end - start, body.length - this.#bodyFill);
    body.set(buf.subarray(start, start + take), this.#bodyFill);
    this.#bodyFill += take;
    if (this.#bodyFill === body.length) {
      this.awaitHandler();
      this.#owner.body(this, this.#request!, body);
    }
  }

  /** Sends an HTTP answer, then closes gracefully. */
  respond(bytes: Uint8Array, status: number): void {
    if (this.phase === "done" || this.phase === "writing" || this.phase === "lingering") return;
    this.#owner.responded(status);
    this.#out = bytes;
    this.phase = "writing";
    this.#deadline = this.#owner.loop.now() + LINGER_MS;
    this.#owner.loop.timersChanged();
    this.#writeOut();
  }

  #writeOut(): void {
    const out = this.#out!;
    const n = this.transport.write(this.fd, out, out.length);
    if (n === IO_FAILED) {
      this.close();
      return;
    }
    if (n !== out.length) {
      // Kept as it is: a TLS write that would block is retried with the same bytes.
      if (n > 0) this.#out = out.subarray(n);
      this.#owner.loop.modifyTarget(this, Interest.WRITABLE);
      return;
    }
    this.#out = null;
    // Lingering close (as nginx does): send FIN, then read and drop what the client still
    // sends until it closes, so a close with unread input does not reset the connection
    // and destroy the answer before the client has read it.
    this.transport.shutdownWrite(this.fd);
    this.phase = "lingering";
    this.#deadline = this.#owner.loop.now() + LINGER_MS;
    this.#owner.loop.modifyTarget(this, Interest.READABLE);
  }

  /** The connection becomes a WebSocket: forget it without closing the descriptor. */
  handOver(): void {
    this.phase = "done";
    this.#owner.forget(this);
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    if (this.phase === "done") return;
    this.phase = "done";
    this.#owner.forget(this);
    this.transport.close(this.fd);
  }
}

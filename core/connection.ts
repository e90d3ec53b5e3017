/**
 * One WebSocket connection inside the engine: its descriptor and transport, its protocol
 * state, its place in the outbox, and the read path from the descriptor to the user
 * object's hooks. The application never sees this object; it sees the `WebSocket` that is
 * this connection's {@link ConnectionUser}.
 *
 * Memory per connection is a product promise: only what every open connection needs lives
 * in fields, booleans share one number, and rarely used state sits in an object that exists
 * only once needed.
 *
 * @module
 */

import { Ready } from "../poller/poller.ts";
import { type OPCODE_PING, OPCODE_PONG } from "../protocol/frame/opcodes.ts";
import type { FrameHandler, FrameParser, MessageInflater } from "../protocol/frame/parser.ts";
import { IO_FAILED, type Transport, WOULD_BLOCK } from "../transport/transport.ts";
import { type ConnectionHost, type ConnectionUser, SendStatus } from "./host.ts";
import type { OutboxConnection } from "./outbox.ts";
import type { MessageDeflater } from "./transform.ts";

/** `readyState` values, as in the WHATWG WebSocket. */
export type ReadyState = 0 | 1 | 2 | 3;

/** Which end of the connection this is. */
export type Role = "server" | "client";

/** Being opened (client side, before the handshake completed). */
export const CONNECTING = 0;
/** Open: messages flow both ways. */
export const OPEN = 1;
/** A close frame was sent or received; the closing handshake is under way. */
export const CLOSING = 2;
/** Closed; the descriptor is released. */
export const CLOSED = 3;

const F_CLIENT = 1;
const F_PARSER_PINNED = 2;
const F_DIRTY = 4;
const F_BLOCKED = 8;
const F_PARTIAL = 16;
const F_CLOSE_SENT = 32;
const F_CLOSE_RECEIVED = 64;
const F_CLOSE_WHEN_FLUSHED = 128;
const F_PING_OUTSTANDING = 256;
const F_READS_HELD = 512;
const F_LOST = 1024;

/** Reads per readiness: a peer that sends without pause cannot hold the loop. */
const READ_ROUNDS = 16;

/** State most connections never need: allocated by the first setter that stores into it. */
class Extras<C> {
  peerCode = 1005;
  peerReason = "";
  failReason = "";
  deadline = 0;
  topics: Set<string> | null = null;
  dropped = 0;
  protocol = "";
  extensions = "";
  /** The host while `closed()` runs after detaching (its handlers and error reporting). */
  lastHost: ConnectionHost<C> | null = null;
  /** Bytes received but not parsed: the connection changed owner in the middle of them. */
  pending: Uint8Array | null = null;
  inflater: MessageInflater | null = null;
  deflater: MessageDeflater | null = null;
  /** Runs once the user's `closed()` has run (the client releases its manager lease). */
  afterClose: (() => void) | null = null;
  /** Size of the close frame queued (0: none yet). */
  closeLength = 0;
  /** The outbox lets the queued close frame skip data the peer does not take. */
  closeTail = 0;
}

/** The parser of the push in progress (a handler may stop it); pushes may nest. */
let dispatching: FrameParser | null = null;

/**
 * One connection. `U` is the user object (the application's `WebSocket`).
 *
 * @example How the server builds one (descriptor 9, already past its handshake)
 * ```ts
 * import { Connection } from "./connection.ts";
 * import { WebSocket } from "./websocket.ts";
 * import { plainTransport } from "../transport/plain.ts";
 *
 * const ws = new WebSocket();
 * const conn = new Connection(9, plainTransport, "server", ws, "/chat", "127.0.0.1", 51000);
 * console.log(conn.role); // "server"
 * ```
 */
export class Connection<U extends ConnectionUser = ConnectionUser>
  implements OutboxConnection, FrameHandler {
  /** Socket descriptor, -1 once closed. */
  fd: number;
  /** How bytes cross the descriptor. */
  readonly transport: Transport;
  /** The manager running it; null when detached (removed, or closed). */
  host: ConnectionHost<Connection<U>> | null = null;
  /** The object the application sees. */
  readonly user: U;
  /** CONNECTING, OPEN, CLOSING or CLOSED. */
  state: ReadyState = CONNECTING;
  /** Booleans, one bit each (accessors below). */
  flags = 0;
  /** Parser kept while a frame or message is split across reads (else the host lends one). */
  parser: FrameParser | null = null;
  /** Outbox: arena range start. */
  rs = 0;
  /** Outbox: arena range end. */
  re = 0;
  /** Outbox: queued chunks. */
  q: Uint8Array[] | null = null;
  /** Outbox: bytes of `q[0]` already written. */
  qHead = 0;
  /** Outbox: bytes held in `q`. */
  qBytes = 0;
  /** Outbox: the buffer the last chunk of `q` grows in, or null. */
  qTail: Uint8Array | null = null;
  /** Loop-clock time of the last byte received. */
  lastSeen = 0;
  /** Index in the host's connection list. */
  index = -1;
  /** Request target (server side) or URL (client side). */
  readonly url: string;
  /** Peer address. */
  readonly remoteHost: string;
  /** Peer port. */
  readonly remotePort: number;
  /**
   * The header fields of the handshake the peer sent (request or response), one
   * `name:value` per line: kept as one string, parsed only when the application asks.
   */
  headerText = "";
  #x: Extras<Connection<U>> | null = null;

  /**
   * @param fd Connected, non-blocking descriptor; the connection owns it from now on.
   * @param transport Plain TCP or TLS, past its own handshake.
   * @param role Server side (accepted) or client side (connected).
   * @param user The application's object.
   * @param url Request target or URL.
   * @param remoteHost Peer address.
   * @param remotePort Peer port.
   */
  constructor(
    fd: number,
    transport: Transport,
    role: Role,
    user: U,
    url: string,
    remoteHost: string,
    remotePort: number,
  ) {
    this.fd = fd;
    this.transport = transport;
    this.user = user;
    this.url = url;
    this.remoteHost = remoteHost;
    this.remotePort = remotePort;
    if (role === "client") this.flags = F_CLIENT;
  }

  #extras(): Extras<Connection<U>> {
    return this.#x ??= new Extras<Connection<U>>();
  }

  #flag(bit: number, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit;
  }

  /** Server or client side. */
  get role(): Role {
    return this.flags & F_CLIENT ? "client" : "server";
  }
  /** `parser` has limits of its own: keep it even when idle. */
  get parserPinned(): boolean {
    return (this.flags & F_PARSER_PINNED) !== 0;
  }
  set parserPinned(on: boolean) {
    this.#flag(F_PARSER_PINNED, on);
  }
  /** Outbox: in the flush list. */
  get dirty(): boolean {
    return (this.flags & F_DIRTY) !== 0;
  }
  set dirty(on: boolean) {
    this.#flag(F_DIRTY, on);
  }
  /** Outbox: waiting for writability. */
  get blocked(): boolean {
    return (this.flags & F_BLOCKED) !== 0;
  }
  set blocked(on: boolean) {
    this.#flag(F_BLOCKED, on);
  }
  /** Outbox: the queue starts in the middle of a frame (a write was cut short). */
  get partial(): boolean {
    return (this.flags & F_PARTIAL) !== 0;
  }
  set partial(on: boolean) {
    this.#flag(F_PARTIAL, on);
  }
  /** We sent a close frame. */
  get closeSent(): boolean {
    return (this.flags & F_CLOSE_SENT) !== 0;
  }
  set closeSent(on: boolean) {
    this.#flag(F_CLOSE_SENT, on);
  }
  /** We received a close frame. */
  get closeReceived(): boolean {
    return (this.flags & F_CLOSE_RECEIVED) !== 0;
  }
  set closeReceived(on: boolean) {
    this.#flag(F_CLOSE_RECEIVED, on);
  }
  /** Close the socket once everything queued is written. */
  get closeWhenFlushed(): boolean {
    return (this.flags & F_CLOSE_WHEN_FLUSHED) !== 0;
  }
  set closeWhenFlushed(on: boolean) {
    this.#flag(F_CLOSE_WHEN_FLUSHED, on);
  }
  /** A heartbeat ping is unanswered. */
  get pingOutstanding(): boolean {
    return (this.flags & F_PING_OUTSTANDING) !== 0;
  }
  set pingOutstanding(on: boolean) {
    this.#flag(F_PING_OUTSTANDING, on);
  }
  /** Reading is paused until {@link Connection.releaseReads}. */
  get readsHeld(): boolean {
    return (this.flags & F_READS_HELD) !== 0;
  }
  /** The connection ended without a closing handshake: the peer went away or reset it. */
  get lost(): boolean {
    return (this.flags & F_LOST) !== 0;
  }

  /** Code of the received close frame (1005 none). */
  get peerCode(): number {
    return this.#x?.peerCode ?? 1005;
  }
  /** Reason of the received close frame. */
  get peerReason(): string {
    return this.#x?.peerReason ?? "";
  }
  /** Why we are failing the connection, reported to `closed()`. */
  get failReason(): string {
    return this.#x?.failReason ?? "";
  }
  set failReason(reason: string) {
    if (reason !== "" || this.#x !== null) this.#extras().failReason = reason;
  }
  /** Loop-clock deadline of the closing handshake (0: none). */
  get deadline(): number {
    return this.#x?.deadline ?? 0;
  }
  set deadline(t: number) {
    if (t !== 0 || this.#x !== null) this.#extras().deadline = t;
  }
  /** Size of the close frame we queued (0: none yet). */
  get closeLength(): number {
    return this.#x?.closeLength ?? 0;
  }
  set closeLength(n: number) {
    if (n !== 0 || this.#x !== null) this.#extras().closeLength = n;
  }
  /** Outbox: when > 0, the close frame at the end of the queue skips data the peer does not take. */
  get closeTail(): number {
    return this.#x?.closeTail ?? 0;
  }
  /** The close frame queued must not wait behind data the peer does not read. */
  expediteClose(): void {
    const n = this.closeLength;
    if (n !== 0) this.#extras().closeTail = n;
  }
  /** Topics this connection is subscribed to. */
  get topics(): Set<string> | null {
    return this.#x?.topics ?? null;
  }
  set topics(topics: Set<string> | null) {
    if (topics !== null || this.#x !== null) this.#extras().topics = topics;
  }
  /** Messages dropped by the "drop" backpressure policy. */
  get dropped(): number {
    return this.#x?.dropped ?? 0;
  }
  set dropped(n: number) {
    if (n !== 0 || this.#x !== null) this.#extras().dropped = n;
  }
  /** Chosen subprotocol. */
  get protocol(): string {
    return this.#x?.protocol ?? "";
  }
  set protocol(p: string) {
    if (p !== "" || this.#x !== null) this.#extras().protocol = p;
  }
  /** Negotiated extensions, as the handshake answered them. */
  get extensions(): string {
    return this.#x?.extensions ?? "";
  }
  set extensions(e: string) {
    if (e !== "" || this.#x !== null) this.#extras().extensions = e;
  }
  /** Inflater of received compressed messages (permessage-deflate), or null. */
  get inflater(): MessageInflater | null {
    return this.#x?.inflater ?? null;
  }
  set inflater(i: MessageInflater | null) {
    if (i !== null || this.#x !== null) this.#extras().inflater = i;
  }
  /** Compressor of sent messages (permessage-deflate), or null. */
  get deflater(): MessageDeflater | null {
    return this.#x?.deflater ?? null;
  }
  set deflater(d: MessageDeflater | null) {
    if (d !== null || this.#x !== null) this.#extras().deflater = d;
  }
  /** The host, or while `closed()` runs the one it had. */
  get lastHost(): ConnectionHost<Connection<U>> | null {
    return this.host ?? this.#x?.lastHost ?? null;
  }
  /** True when bytes wait to be parsed (see {@link Connection.keepPending}). */
  get hasPending(): boolean {
    return this.#x !== null && this.#x.pending !== null;
  }

  // ------------------------------------------------------------------ attaching

  /** Runs on `host` from now on; restarts the connection's times on its clock. */
  attach(host: ConnectionHost<Connection<U>>): void {
    this.host = host;
    if (this.state === CONNECTING) this.state = OPEN;
    this.lastSeen = host.now();
    this.pingOutstanding = false;
  }

  /** Leaves its host without closing (the descriptor stays open, unread bytes are kept). */
  detachHost(): void {
    this.host = null;
  }

  /**
   * Keeps `buf[start..end)` (received, not parsed) for whoever runs the connection next; it
   * is parsed before anything read after it.
   */
  keepPending(buf: Uint8Array, start: number, end: number): void {
    if (start >= end) return;
    const x = this.#extras();
    const old = x.pending;
    if (old === null) {
      x.pending = buf.slice(start, end);
      return;
    }
    const joined = new Uint8Array(old.length + end - start);
    joined.set(old);
    joined.set(buf.subarray(start, end), old.length);
    x.pending = joined;
  }

  /** Runs `fn` once the connection has closed and the user's `closed()` has run. */
  onFinished(fn: () => void): void {
    this.#extras().afterClose = fn;
  }

  /** Pauses reading (the poller interest is the host's business). */
  holdReads(): void {
    this.#flag(F_READS_HELD, true);
  }

  /** Resumes reading; bytes kept meanwhile are parsed at the next read. */
  releaseReads(): void {
    this.#flag(F_READS_HELD, false);
  }

  // ------------------------------------------------------------------ reading

  /** The poller reports the descriptor ready. */
  onReady(ready: number): void {
    const host = this.host;
    if (host === null || this.state === CLOSED) return;
    // A TLS transport may need the other direction: a read waiting for writability, a
    // write waiting for input.
    const wants = this.transport.wants;
    if (ready & Ready.WRITABLE) host.writable(this);
    if (ready & (Ready.READABLE | Ready.HANGUP | Ready.ERROR) || (wants & ready) !== 0) {
      if (!this.read() && (this.state as number) !== CLOSED) {
        this.terminate();
        return;
      }
      if (this.blocked && wants !== 0 && this.host === host) host.writable(this);
    }
  }

  /**
   * Parses what was kept, then reads what is available on the descriptor, parses it and
   * dispatches what it completes. Stops when the connection changes owner or holds its
   * reads (what was read is kept for later).
   *
   * @returns false once the connection is finished.
   */
  read(): boolean {
    const host = this.host;
    if (host === null || this.state === CLOSED) return false;
    if (this.flags & F_READS_HELD) return true;
    const kept = this.#x?.pending ?? null;
    if (kept !== null) {
      this.#x!.pending = null;
      if (!(this.flags & F_CLOSE_WHEN_FLUSHED)) this.parse(kept, 0, kept.length);
      if ((this.state as number) === CLOSED) return false;
      // Moved, held, or some of it kept again (a yield): nothing newer may be parsed first.
      if (this.host !== host || this.flags & F_READS_HELD || this.#x!.pending !== null) {
        return true;
      }
    }
    const buf = host.readBuffer;
    const size = buf.length;
    const transport = this.transport;
    for (let round = 0; round < READ_ROUNDS; round++) {
      const n = transport.read(this.fd, buf, host.readLength);
      if (n > 0) {
        this.lastSeen = host.now();
        this.flags &= ~F_PING_OUTSTANDING;
        host.stats.bytesIn += n;
        // After a close frame (received, or sent because the peer broke the protocol)
        // nothing more is parsed; reading goes on only to see the peer close.
        if (!(this.flags & F_CLOSE_WHEN_FLUSHED)) {
          this.parse(buf, 0, n);
          if ((this.state as number) === CLOSED) return false;
          if (this.host !== host || this.flags & F_READS_HELD || this.#x?.pending) return true;
        }
        if (n < size && !transport.pending) return true;
        continue;
      }
      if (n === WOULD_BLOCK) {
        if (transport.wants !== 0) host.watch(this);
        return true;
      }
      if (n === 0) {
        // End of stream: clean only when both close frames went through.
        if (this.closeSent && this.closeReceived) {
          this.finish(this.peerCode, this.peerReason);
        } else {
          if (!this.closeReceived) this.flags |= F_LOST;
          this.finish(1006, this.failReason);
        }
        return false;
      }
      if (n === IO_FAILED) {
        this.flags |= F_LOST;
        this.failReason ||= transport.lastErrorMessage;
        this.finish(1006, this.failReason);
        return false;
      }
    }
    // Out of rounds with bytes the poller cannot see (decrypted TLS records): come back.
    if (transport.pending) host.readAgain(this);
    return true;
  }

  /**
   * Parses `buf[start..end)` and dispatches what it completes. Between messages the
   * connection holds no parser: it borrows its host's, and keeps one only while a frame or
   * fragmented message is split across reads, so an idle connection costs no parser
   * memory and a busy one allocates nothing per read.
   */
  parse(buf: Uint8Array, start: number, end: number): void {
    const host = this.host!;
    const own = this.parser;
    const parser = own ?? host.lendParser(this, this.role);
    const outer = dispatching;
    dispatching = parser;
    try {
      parser.push(buf, start, end, this);
    } finally {
      dispatching = outer;
      if (this.state === CLOSED) {
        parser.reset();
        if (own !== null) this.parser = null;
        else host.returnParser(this, parser);
      } else {
        const at = parser.stoppedAt;
        // Dispatch stopped because the connection changed owner or held its reads: the
        // rest belongs to whoever reads it next.
        if (at < end) {
          this.keepPending(buf, at, end);
          // Adopted from inside the handler: the new host learns of the bytes only now. Or
          // the parser inflated its budget: the rest waits for the next turn, after the other
          // connections, instead of holding the loop for the whole message.
          const next = this.host;
          if (
            next !== null && !(this.flags & F_READS_HELD) && (next !== host || parser.yielded)
          ) next.readAgain(this);
        }
        if (own !== null) {
          if (!this.parserPinned && (own.idle || own.finished)) this.parser = null;
        } else if (host.returnParser(this, parser)) {
          this.parser = parser;
        }
      }
    }
  }

  /** After a dispatch: stop the push when the connection changed owner, closed or paused. */
  #stopIfMoved(host: ConnectionHost<Connection<U>>): void {
    if (this.host !== host || this.state === CLOSED || this.flags & F_READS_HELD) {
      dispatching?.interrupt();
    }
  }

  /** A complete message (parser callback). */
  onMessage(data: string | Uint8Array, lent?: boolean): void {
    const host = this.host!;
    host.stats.messagesIn++;
    try {
      this.user.receivedMessage(data, lent);
    } catch (err) {
      host.reportError(err, this);
    }
    this.#stopIfMoved(host);
  }

  /** A ping: answer it (one pong per ping), then tell the user. */
  onPing(payload: Uint8Array): void {
    const host = this.host!;
    if (!this.closeSent) host.sendControl(this, OPCODE_PONG, payload);
    try {
      this.user.pinged(payload);
    } catch (err) {
      host.reportError(err, this);
    }
    this.#stopIfMoved(host);
  }

  /** A pong. */
  onPong(payload: Uint8Array): void {
    const host = this.host!;
    try {
      this.user.ponged(payload);
    } catch (err) {
      host.reportError(err, this);
    }
    this.#stopIfMoved(host);
  }

  /** A valid close frame: echo it and finish once written. */
  onClose(code: number, reason: string): void {
    const host = this.host!;
    this.closeReceived = true;
    if (code !== 1005 || this.#x !== null) this.#extras().peerCode = code;
    if (reason !== "" || this.#x !== null) this.#extras().peerReason = reason;
    // Echo the code (none when the peer sent none) and finish once it is written. The
    // answer (or our own close, if it was first) does not wait behind data the peer is no
    // longer reading: it goes right after the frame in progress.
    if (!this.closeSent) host.sendClose(this, code === 1005 ? 0 : code, "");
    host.expediteClose(this);
    this.state = CLOSING;
    this.closeWhenFlushed = true;
    host.closeIfFlushed(this);
  }

  /** The peer broke the protocol: send `code` and drop the connection. */
  onFail(code: number, reason: string): void {
    const host = this.host!;
    this.failReason = reason;
    host.stats.protocolErrors++;
    if (!this.closeSent) host.sendClose(this, code, reason.length <= 40 ? reason : "");
    // Data for a peer that broke the protocol is moot: the close goes first.
    host.expediteClose(this);
    this.state = CLOSING;
    this.closeWhenFlushed = true;
    host.closeIfFlushed(this);
  }

  // ------------------------------------------------------------------ sending

  /** Queues a data message: the frame's size, or a {@link SendStatus} value. */
  send(data: string | Uint8Array, binary: boolean, compress = true): number {
    const host = this.host;
    if (host === null || this.state !== OPEN) return SendStatus.CLOSED;
    return host.sendData(this, data, binary, compress);
  }

  /** Queues a ping or pong; false when closing, detached or refused by backpressure. */
  sendControl(
    opcode: typeof OPCODE_PING | typeof OPCODE_PONG,
    payload: string | Uint8Array,
  ): boolean {
    const host = this.host;
    if (host === null || this.state !== OPEN) return false;
    return host.sendControl(this, opcode, payload);
  }

  /**
   * Starts the closing handshake (the caller checked the code). Does nothing once closing.
   * @returns false when detached from a host (nothing can be sent).
   */
  close(code: number, reason: string): boolean {
    if (this.state === CLOSING || this.state === CLOSED) return true;
    const host = this.host;
    if (host === null) return false;
    host.sendClose(this, code, reason);
    return true;
  }

  /** Drops the connection now, without a close frame. Idempotent. */
  terminate(): void {
    if (this.state === CLOSED) return;
    this.finish(1006, this.failReason);
  }

  /** Releases everything and runs the user's `closed()` once. */
  finish(code: number, reason: string): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    const host = this.host;
    this.parser?.reset();
    this.parser = null;
    const x = this.#x;
    if (x !== null) {
      x.pending = null;
      x.inflater?.reset();
      // zlib streams are native memory: released on every way a connection ends.
      x.deflater?.free();
      x.deflater = null;
      x.inflater = null;
    }
    if (host !== null) {
      host.detach(this, code);
      this.#extras().lastHost = host;
    } else if (this.fd >= 0) {
      // Detached (removed and never adopted): the descriptor is still ours to close.
      this.transport.close(this.fd);
    }
    this.fd = -1;
    this.host = null;
    try {
      this.user.closed(code, reason);
    } catch (err) {
      if (host !== null) host.reportError(err, this);
      else console.error(err);
    }
    const after = this.#x?.afterClose ?? null;
    if (host !== null) this.#x!.lastHost = null;
    if (after !== null) {
      this.#x!.afterClose = null;
      after();
    }
  }
}

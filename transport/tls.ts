/**
 * TLS on a non-blocking descriptor: one OpenSSL session per connection, reading and
 * writing the socket itself through a socket BIO (`SSL_set_fd`), driven by the same poller
 * as everything else.
 *
 * How a caller drives it:
 * - Handshake phase: call {@link TlsTransport.handshake} when the descriptor is ready;
 *   `HANDSHAKE_WANT_READ`/`WANT_WRITE` say which readiness to wait for next, `DONE` moves
 *   on, `FAILED` means close (the cause is in `lastErrorMessage` and the context's stats).
 *   After `DONE`, check {@link TlsTransport.pending}: application bytes that arrived with
 *   the peer's last handshake message are already inside OpenSSL, and the poller will not
 *   report them.
 * - Reads: {@link TlsTransport.read} returns decrypted bytes, `WOULD_BLOCK`, 0 at the end
 *   (close_notify or EOF) or `IO_FAILED`. It fills the buffer with every record already
 *   received before returning, without another syscall; when the buffer filled up first,
 *   `pending` is true: read again without waiting for the poller.
 * - Writes: call {@link TlsTransport.write} once per tick with every queued byte. It loops
 *   `SSL_write` (partial-write mode returns after each record) until everything went out
 *   or the socket is full; it then returns the bytes taken (or `WOULD_BLOCK` when none).
 *   **Same-buffer rule**: after a short count or `WOULD_BLOCK`, the next write must start
 *   with the bytes that were not taken, unchanged (a copy is fine, more bytes may follow):
 *   OpenSSL holds a record made from them half-sent.
 * - `wants`: after a `WOULD_BLOCK`, extra readiness TLS needs (a read that must write
 *   first, a write that must read first); add it to the poller interest and call the same
 *   operation again when it comes.
 * - {@link TlsTransport.shutdownWrite}: close_notify (best effort), then FIN.
 *   {@link TlsTransport.close}: frees the session and closes the descriptor.
 *
 * kTLS: when the context asks for it (Linux), OpenSSL tries to hand the record layer to the
 * kernel after the handshake. When the kernel took the sending side
 * ({@link TlsTransport.ktlsSend}), writes are plain `send(2)` calls on the descriptor; the
 * kernel encrypts. Otherwise (no `tls` module, cipher or build without it) writes go
 * through `SSL_write`.
 *
 * @module
 */

import { errno, errnoName } from "../ffi/errno.ts";
import {
  BIO_CTRL_GET_KTLS_SEND,
  cString,
  type LibCrypto,
  type LibSsl,
  SSL_ERROR_SSL,
  SSL_ERROR_SYSCALL,
  SSL_ERROR_WANT_READ,
  SSL_ERROR_WANT_WRITE,
  SSL_ERROR_ZERO_RETURN,
  SSL_R_UNEXPECTED_EOF_WHILE_READING,
  takeOpenSslErrors,
  takeOpenSslReason,
  TlsError,
  TLSEXT_NAMETYPE_host_name,
} from "../ffi/openssl.ts";
import { addressOf, lastIoError, sendFrom, sendFromAddress } from "../net/io.ts";
import { closeFd, shutdownFd } from "../net/tcp.ts";
import { Interest } from "../poller/poller.ts";
import { selectedAlpn } from "./tls/alpn.ts";
import type { TlsContext, TlsGeneration } from "./tls/context.ts";
import { describeFailure, newSession } from "./tls/session.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_FAILED,
  HANDSHAKE_WANT_READ,
  HANDSHAKE_WANT_WRITE,
  type HandshakeStep,
  IO_FAILED,
  type Transport,
  WOULD_BLOCK,
} from "./transport.ts";

// Bound on first use, so that importing this module needs no OpenSSL.
let S: LibSsl;
let C: LibCrypto;

/**
 * `size_t` out-parameter of `SSL_read_ex`, read as its low 32 bits (little-endian systems
 * only, like every system this package supports; no read is 4 GiB).
 */
const countBuf = new ArrayBuffer(8);
const countOut = new Uint8Array(countBuf);
const count32 = new Uint32Array(countBuf);

/** The last buffer whose address was taken (the loop's shared read buffer, usually). */
let addressBuf: Uint8Array | null = null;
let addressValue = 0;

function bufferAddress(buf: Uint8Array): number {
  if (buf !== addressBuf) {
    addressBuf = buf;
    addressValue = addressOf(buf);
  }
  return addressValue;
}

/** The last `writeAddress` start, kept as a BigInt: a broadcast writes one slice to many. */
let lastWriteAddress = -1;
let lastWriteAddressBig = 0n;

/** Receives the error queue's text from `takeOpenSslReason`. */
const reasonText: string[] = [""];

/** What a read saw after it already returned bytes: given at the next read. */
const DEFERRED_NONE = 0;
const DEFERRED_EOF = 1;
const DEFERRED_FAILED = 2;

/**
 * One connection's TLS session over its descriptor. Create it with
 * {@link TlsTransport.accept} (server) or {@link TlsTransport.connect} (client).
 *
 * @example Drive a client handshake from a poller's readiness
 * ```ts
 * import { TlsTransport } from "./tls.ts";
 * import { TlsClientContext } from "./tls/client_context.ts";
 * import { HANDSHAKE_DONE, HANDSHAKE_FAILED, HANDSHAKE_WANT_READ } from "./transport.ts";
 * import { Interest } from "../poller/poller.ts";
 *
 * // `fd` is a connected non-blocking socket (connectTcp, then finishConnect).
 * function startTls(context: TlsClientContext, fd: number): TlsTransport {
 *   return TlsTransport.connect(context, fd, "example.com");
 * }
 * // Called at every readiness of `fd` until it returns "done" or "failed".
 * function onReady(tls: TlsTransport, fd: number): "done" | "failed" | number {
 *   const step = tls.handshake(fd);
 *   if (step === HANDSHAKE_DONE) return "done"; // then read() at once if tls.pending
 *   if (step === HANDSHAKE_FAILED) return "failed"; // tls.lastErrorMessage says why
 *   return step === HANDSHAKE_WANT_READ ? Interest.READABLE : Interest.WRITABLE;
 * }
 * console.log(typeof startTls, typeof onReady); // "function" "function"
 * ```
 */
export class TlsTransport implements Transport {
  /** Always `"tls"`. */
  readonly kind = "tls" as const;
  /**
   * True when decrypted or received-but-unprocessed bytes wait inside OpenSSL: call
   * {@link TlsTransport.read} again without waiting for the poller.
   */
  pending = false;
  /** `Interest` bits the last `WOULD_BLOCK` needs besides the caller's own. */
  wants = 0;
  /** errno of the last `IO_FAILED` (0 for a TLS protocol failure). */
  lastError = 0;
  /** Cause of the last failure ("" when none). */
  lastErrorMessage = "";
  /** The configuration this session came from. */
  readonly context: TlsContext;
  #ssl: Deno.PointerValue;
  #generation: TlsGeneration | null;
  #done = false;
  #handshakeFailed = false;
  #ktlsSend = false;
  #shutdownSent = false;
  #deferred = DEFERRED_NONE;
  #closeNotifyReceived = false;

  private constructor(context: TlsContext, ssl: Deno.PointerObject, generation: TlsGeneration) {
    this.context = context;
    this.#ssl = ssl;
    this.#generation = generation;
    generation.enter();
    context.stats.handshakesStarted++;
  }

  /** Binds a new session to `fd`. */
  static #on(context: TlsContext, fd: number, hostname: string | null): TlsTransport {
    const session = newSession(context, hostname);
    S = session.S;
    C = session.C;
    if (S.SSL_set_fd(session.ssl, fd) !== 1) {
      const why = takeOpenSslErrors();
      S.SSL_free(session.ssl);
      throw new TlsError("TLS_CONFIG", `SSL_set_fd failed: ${why}`);
    }
    return new TlsTransport(context, session.ssl, session.generation);
  }

  /**
   * The server side of a connection accepted on `fd` (non-blocking). The descriptor stays
   * the caller's until {@link TlsTransport.close}; on a throw the caller closes it.
   *
   * @param context A server context.
   * @param fd The accepted descriptor.
   * @returns The session, before its handshake.
   */
  static accept(context: TlsContext, fd: number): TlsTransport {
    return TlsTransport.#on(context, fd, null);
  }

  /**
   * The client side of a connection on `fd` (connected: after `finishConnect`). Sends `hostname` as SNI (not an IP literal) and makes the
   * handshake fail unless the server's certificate is valid for it (DNS name, or IP
   * address for a literal) and chains to a trusted root.
   *
   * @param context A client context.
   * @param fd The connected descriptor.
   * @param hostname The name (or IP literal) the user asked to connect to.
   * @returns The session, before its handshake.
   */
  static connect(context: TlsContext, fd: number, hostname: string): TlsTransport {
    return TlsTransport.#on(context, fd, hostname);
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Advances the handshake.
   *
   * @param _fd The descriptor (the session knows it).
   * @returns `HANDSHAKE_DONE`, `HANDSHAKE_WANT_READ`, `HANDSHAKE_WANT_WRITE` or
   *   `HANDSHAKE_FAILED`.
   */
  handshake(_fd: number): HandshakeStep {
    if (this.#done) return HANDSHAKE_DONE;
    const ssl = this.#ssl;
    if (ssl === null || this.#handshakeFailed) return HANDSHAKE_FAILED;
    const r = S.SSL_do_handshake(ssl);
    if (r === 1) {
      this.#done = true;
      this.#leave();
      this.pending = S.SSL_has_pending(ssl) === 1;
      const stats = this.context.stats;
      stats.handshakesCompleted++;
      if (this.context.ktls) {
        this.#ktlsSend = C.BIO_ctrl(S.SSL_get_wbio(ssl), BIO_CTRL_GET_KTLS_SEND, 0n, null) !== 0n;
        if (this.#ktlsSend) stats.ktlsSessions++;
      }
      return HANDSHAKE_DONE;
    }
    const e = errno();
    const err = S.SSL_get_error(ssl, r);
    if (err === SSL_ERROR_WANT_READ) return HANDSHAKE_WANT_READ;
    if (err === SSL_ERROR_WANT_WRITE) return HANDSHAKE_WANT_WRITE;
    this.#failed(err, e, r, "handshake");
    this.#handshakeFailed = true;
    this.context.stats.handshakeFailed(this.lastErrorMessage);
    this.#leave();
    return HANDSHAKE_FAILED;
  }

  /** True once the handshake completed. */
  get handshakeDone(): boolean {
    return this.#done;
  }

  // ---------------------------------------------------------------- read

  /**
   * Reads decrypted bytes into the start of `buf`: every record already received, up to
   * `length` bytes.
   *
   * @param _fd The descriptor (the session knows it).
   * @param buf Destination.
   * @param length How many bytes may be written into `buf` (`buf.length` at most).
   * @returns bytes (> 0), 0 at the end of the stream, `WOULD_BLOCK` or `IO_FAILED`.
   */
  read(_fd: number, buf: Uint8Array, length: bigint): number {
    const ssl = this.#ssl;
    if (ssl === null) return IO_FAILED;
    if (this.#deferred !== DEFERRED_NONE) return this.#takeDeferred();
    this.wants = 0;
    const r = S.SSL_read_ex(ssl, buf, length, countOut);
    if (r !== 1) {
      this.pending = false;
      return this.#readFailure(ssl, r);
    }
    const total = count32[0];
    if (S.SSL_has_pending(ssl) === 0) {
      this.pending = false;
      return total;
    }
    return this.#readMore(ssl, buf, total, Number(length));
  }

  /** More records are buffered: decrypt them into the rest of `buf`. */
  #readMore(ssl: Deno.PointerObject, buf: Uint8Array, total: number, cap: number): number {
    const base = bufferAddress(buf);
    while (total < cap) {
      const r = S.SSL_read_exAddr(ssl, BigInt(base + total), BigInt(cap - total), countOut);
      if (r !== 1) {
        const f = this.#readFailure(ssl, r);
        if (f === WOULD_BLOCK) {
          this.pending = false;
        } else {
          // The bytes read so far go up first; the end comes with the next read.
          this.#deferred = f === 0 ? DEFERRED_EOF : DEFERRED_FAILED;
          this.pending = true;
        }
        return total;
      }
      total += count32[0];
      if (S.SSL_has_pending(ssl) === 0) {
        this.pending = false;
        return total;
      }
    }
    this.pending = true;
    return total;
  }

  #takeDeferred(): number {
    const d = this.#deferred;
    this.#deferred = DEFERRED_NONE;
    this.pending = false;
    return d === DEFERRED_EOF ? 0 : IO_FAILED;
  }

  /** Classifies a failed `SSL_read_ex`. */
  #readFailure(ssl: Deno.PointerObject, r: number): number {
    const e = errno();
    const err = S.SSL_get_error(ssl, r);
    if (err === SSL_ERROR_WANT_READ) return WOULD_BLOCK;
    if (err === SSL_ERROR_WANT_WRITE) {
      this.wants = Interest.WRITABLE;
      return WOULD_BLOCK;
    }
    if (err === SSL_ERROR_ZERO_RETURN) {
      this.#closeNotifyReceived = true;
      return 0;
    }
    if (err === SSL_ERROR_SSL) {
      // A FIN without close_notify is an end of stream like any other here: WebSocket's
      // own close handshake tells a clean end from a truncated one.
      if (takeOpenSslReason(reasonText) === SSL_R_UNEXPECTED_EOF_WHILE_READING) return 0;
      this.#failedWith(err, e, reasonText[0], "read");
    } else {
      this.#failed(err, e, r, "read");
    }
    this.context.stats.ioFailed(this.lastErrorMessage);
    return IO_FAILED;
  }

  // ---------------------------------------------------------------- write

  /**
   * Encrypts and sends the first `length` bytes of `buf`, record after record, until all
   * went out or the socket is full. See the module notes for the same-buffer rule.
   *
   * @param fd The descriptor (used directly when the kernel encrypts).
   * @param buf Source.
   * @param length Bytes to send.
   * @returns bytes taken (>= 0), `WOULD_BLOCK` or `IO_FAILED`.
   */
  write(fd: number, buf: Uint8Array, length: number): number {
    if (this.#ktlsSend) return this.#kernelResult(sendFrom(fd, buf, length));
    const ssl = this.#ssl;
    if (ssl === null) return IO_FAILED;
    if (length <= 0) return 0;
    this.wants = 0;
    const n = S.SSL_write(ssl, buf, length);
    if (n === length) return n;
    if (n <= 0) return this.#writeFailure(ssl, n, 0);
    return this.#writeRest(ssl, bufferAddress(buf), n, length);
  }

  /**
   * As {@link TlsTransport.write}, from a raw address (an arena slice). The memory must
   * stay put and unchanged until a retry has taken it.
   *
   * @param fd The descriptor.
   * @param address Address of the first byte.
   * @param length Bytes to send.
   * @returns bytes taken (>= 0), `WOULD_BLOCK` or `IO_FAILED`.
   */
  writeAddress(fd: number, address: number, length: number): number {
    if (this.#ktlsSend) return this.#kernelResult(sendFromAddress(fd, address, length));
    const ssl = this.#ssl;
    if (ssl === null) return IO_FAILED;
    if (length <= 0) return 0;
    this.wants = 0;
    if (address !== lastWriteAddress) {
      lastWriteAddress = address;
      lastWriteAddressBig = BigInt(address);
    }
    const n = S.SSL_writeAddr(ssl, lastWriteAddressBig, length);
    if (n === length) return n;
    if (n <= 0) return this.#writeFailure(ssl, n, 0);
    return this.#writeRest(ssl, address, n, length);
  }

  /** Partial-write mode returned after a record: send the following ones. */
  #writeRest(ssl: Deno.PointerObject, base: number, done: number, length: number): number {
    while (done < length) {
      const n = S.SSL_writeAddr(ssl, BigInt(base + done), length - done);
      if (n <= 0) return this.#writeFailure(ssl, n, done);
      done += n;
    }
    return done;
  }

  /** Classifies a failed `SSL_write` after `done` bytes were taken by this call. */
  #writeFailure(ssl: Deno.PointerObject, n: number, done: number): number {
    const e = errno();
    const err = S.SSL_get_error(ssl, n);
    if (err === SSL_ERROR_WANT_WRITE) return done > 0 ? done : WOULD_BLOCK;
    if (err === SSL_ERROR_WANT_READ) {
      this.wants = Interest.READABLE;
      return done > 0 ? done : WOULD_BLOCK;
    }
    this.#failed(err, e, n, "write");
    this.context.stats.ioFailed(this.lastErrorMessage);
    return done > 0 ? done : IO_FAILED;
  }

  /** A kernel-TLS send result, with its errno kept on failure. */
  #kernelResult(n: number): number {
    if (n === IO_FAILED) {
      this.lastError = lastIoError();
      this.lastErrorMessage = `send: ${errnoName(this.lastError)}`;
      this.context.stats.ioFailed(this.lastErrorMessage);
    }
    return n;
  }

  // ---------------------------------------------------------------- failures

  /** Records why an OpenSSL call failed and empties the error queue. */
  #failed(err: number, e: number, _r: number, op: string): void {
    this.#failedWith(err, e, takeOpenSslErrors(), op);
  }

  /** Records why an OpenSSL call failed, given the error queue's text (already taken). */
  #failedWith(err: number, e: number, queued: string, op: string): void {
    this.lastError = err === SSL_ERROR_SYSCALL ? e : 0;
    const ssl = this.#ssl;
    const why = ssl === null ? queued : describeFailure(ssl, this.context.role, err, e, queued);
    this.lastErrorMessage = `TLS ${op}: ${why}`;
  }

  // ---------------------------------------------------------------- end

  /**
   * Sends close_notify (once, best effort: dropped if the socket is full) and then FIN.
   *
   * @param fd The descriptor.
   */
  shutdownWrite(fd: number): void {
    const ssl = this.#ssl;
    if (ssl !== null && this.#done && !this.#shutdownSent) {
      this.#shutdownSent = true;
      if (S.SSL_shutdown(ssl) < 0) takeOpenSslErrors();
    }
    shutdownFd(fd, "write");
  }

  /**
   * Frees the session and closes the descriptor. Idempotent for the session; the
   * descriptor is closed at every call, so call it once.
   *
   * @param fd The descriptor.
   */
  close(fd: number): void {
    const ssl = this.#ssl;
    if (ssl !== null) {
      this.#ssl = null;
      this.#leave();
      S.SSL_free(ssl);
      this.pending = false;
    }
    closeFd(fd);
  }

  #leave(): void {
    const gen = this.#generation;
    if (gen !== null) {
      this.#generation = null;
      gen.leave();
    }
  }

  // ---------------------------------------------------------------- what was agreed

  /** True when the kernel encrypts this connection's writes (kTLS). */
  get ktlsSend(): boolean {
    return this.#ktlsSend;
  }

  /** The protocol ALPN agreed on (`"http/1.1"`), or null. */
  get alpnProtocol(): string | null {
    return this.#ssl === null ? null : selectedAlpn(this.#ssl);
  }

  /** The protocol version (`"TLSv1.3"`), "" once closed. */
  get protocol(): string {
    return this.#ssl === null ? "" : cString(S.SSL_get_version(this.#ssl));
  }

  /** The cipher suite (`"TLS_AES_256_GCM_SHA384"`), "" before the handshake or once closed. */
  get cipher(): string {
    if (this.#ssl === null) return "";
    const c = S.SSL_get_current_cipher(this.#ssl);
    return c === null ? "" : cString(S.SSL_CIPHER_get_name(c));
  }

  /** The server name the client sent (SNI), or "" when none (or once closed). */
  get serverName(): string {
    return this.#ssl === null
      ? ""
      : cString(S.SSL_get_servername(this.#ssl, TLSEXT_NAMETYPE_host_name));
  }

  /** True once a read met the peer's close_notify (false when the stream just ended). */
  get closeNotifyReceived(): boolean {
    return this.#closeNotifyReceived;
  }
}

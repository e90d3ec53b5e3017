/**
 * TLS through memory BIOs (the uSockets shape): OpenSSL never touches the descriptor.
 * One pair of memory BIOs is shared by every session of this thread; the transport reads
 * ciphertext with `recv` into a shared buffer, hands it to OpenSSL (`BIO_write`), and
 * sends what OpenSSL wrote (`BIO_read`, then `send`). The shared BIOs are empty between
 * operations: input OpenSSL did not take and output the socket did not take are kept per
 * connection and put back first next time.
 *
 * Same interface and rules as {@link TlsTransport} (transport/tls.ts): same-buffer retry,
 * `pending`, `wants`, one write per tick. Kept to compare the two BIO strategies (see
 * bench/tls_transport_bench.ts and TLS_NOTES.md); kTLS needs the socket BIO and is never
 * used here.
 *
 * @module
 */

import { errno } from "../ffi/errno.ts";
import {
  BIO_C_SET_BUF_MEM_EOF_RETURN,
  BIO_CTRL_PENDING,
  BIO_CTRL_RESET,
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
import { addressOf, IO_FAILED, lastIoError, recvInto, sendFrom, WOULD_BLOCK } from "../net/io.ts";
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
  type Transport,
} from "./transport.ts";

let S: LibSsl;
let C: LibCrypto;

/** The thread's shared BIOs: `rbio` feeds OpenSSL, `wbio` collects what it writes. */
let rbio: Deno.PointerObject | null = null;
let wbio: Deno.PointerObject | null = null;

/** Ciphertext in from the socket (one `recv`). */
const IN_SIZE = 65536;
const IN_LEN = BigInt(IN_SIZE);
const cipherIn = new Uint8Array(new ArrayBuffer(IN_SIZE));
/** Ciphertext out to the socket (one `send`). */
const OUT_SIZE = 131072;
const cipherOut = new Uint8Array(new ArrayBuffer(OUT_SIZE));
/** Plaintext encrypted per `send`: four full records. */
const CHUNK = 65536;

const countBuf = new ArrayBuffer(8);
const countOut = new Uint8Array(countBuf);
const count32 = new Uint32Array(countBuf);
const reasonText: string[] = [""];

let addressBuf: Uint8Array | null = null;
let addressValue = 0;

function bufferAddress(buf: Uint8Array): number {
  if (buf !== addressBuf) {
    addressBuf = buf;
    addressValue = addressOf(buf);
  }
  return addressValue;
}

function sharedBios(): void {
  if (rbio !== null) return;
  const r = C.BIO_new(C.BIO_s_mem());
  const w = C.BIO_new(C.BIO_s_mem());
  if (r === null || w === null) {
    throw new TlsError("TLS_CONFIG", `BIO_new failed: ${takeOpenSslErrors()}`);
  }
  // An empty input BIO means "no bytes yet" (retry), not the end of the stream.
  C.BIO_ctrl(r, BIO_C_SET_BUF_MEM_EOF_RETURN, -1n, null);
  rbio = r;
  wbio = w;
}

/** Results of {@link TlsMemoryTransport}'s internal decrypt step besides byte counts. */
const END = -10;
const FAILED = -11;

const DEFERRED_NONE = 0;
const DEFERRED_EOF = 1;
const DEFERRED_FAILED = 2;

/**
 * One connection's TLS session, its bytes moved through the thread's shared memory BIOs.
 *
 * @example
 * ```ts
 * import { TlsMemoryTransport } from "./tls_memory.ts";
 * import type { TlsServerContext } from "./tls/server_context.ts";
 * function onAccept(context: TlsServerContext, fd: number): TlsMemoryTransport {
 *   return TlsMemoryTransport.accept(context, fd);
 * }
 * console.log(typeof onAccept); // "function"
 * ```
 */
export class TlsMemoryTransport implements Transport {
  /** Always `"tls"`. */
  readonly kind = "tls" as const;
  /** True when bytes wait inside OpenSSL or in this connection's input stash. */
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
  #shutdownSent = false;
  #deferred = DEFERRED_NONE;
  #closeNotifyReceived = false;
  /** Ciphertext received that OpenSSL has not taken yet. */
  #inStash: Uint8Array | null = null;
  /** Ciphertext OpenSSL wrote that the socket has not taken yet, from `#outOff`. */
  #outStash: Uint8Array | null = null;
  #outOff = 0;
  /** Plaintext bytes at the start of the caller's retry whose records are in `#outStash`. */
  #covers = 0;

  private constructor(context: TlsContext, ssl: Deno.PointerObject, generation: TlsGeneration) {
    this.context = context;
    this.#ssl = ssl;
    this.#generation = generation;
    generation.enter();
    context.stats.handshakesStarted++;
  }

  static #make(context: TlsContext, hostname: string | null): TlsMemoryTransport {
    const session = newSession(context, hostname);
    S = session.S;
    C = session.C;
    sharedBios();
    // Each session holds a reference on the shared BIOs; SSL_free drops it.
    C.BIO_up_ref(rbio);
    S.SSL_set0_rbio(session.ssl, rbio);
    C.BIO_up_ref(wbio);
    S.SSL_set0_wbio(session.ssl, wbio);
    return new TlsMemoryTransport(context, session.ssl, session.generation);
  }

  /**
   * The server side of a connection accepted on `fd`.
   *
   * @param context A server context.
   * @param _fd The accepted descriptor (passed to each call instead).
   * @returns The session, before its handshake.
   */
  static accept(context: TlsContext, _fd: number): TlsMemoryTransport {
    return TlsMemoryTransport.#make(context, null);
  }

  /**
   * The client side of a connection, checking the server against `hostname`.
   *
   * @param context A client context.
   * @param _fd The connected descriptor (passed to each call instead).
   * @param hostname The name (or IP literal) to verify and send as SNI.
   * @returns The session, before its handshake.
   */
  static connect(context: TlsContext, _fd: number, hostname: string): TlsMemoryTransport {
    return TlsMemoryTransport.#make(context, hostname);
  }

  // ---------------------------------------------------------------- shared BIOs <-> socket

  /** Puts the input stash back into the shared input BIO. */
  #feed(): void {
    const stash = this.#inStash;
    if (stash !== null) {
      this.#inStash = null;
      C.BIO_write(rbio, stash, stash.length);
    }
  }

  /** Moves what OpenSSL left in the shared input BIO into this connection's stash. */
  #keepInput(): void {
    const left = C.BIO_ctrlInt(rbio, BIO_CTRL_PENDING, 0n, null);
    if (left > 0) {
      const stash = new Uint8Array(left);
      C.BIO_read(rbio, stash, left);
      this.#inStash = stash;
    }
  }

  /** Appends everything in the shared output BIO to `prefix` as the new output stash. */
  #stashOutput(prefix: Uint8Array): void {
    const extra = C.BIO_ctrlInt(wbio, BIO_CTRL_PENDING, 0n, null);
    const stash = new Uint8Array(prefix.length + (extra > 0 ? extra : 0));
    stash.set(prefix);
    if (extra > 0) C.BIO_read(wbio, stash.subarray(prefix.length), extra);
    this.#outStash = stash;
    this.#outOff = 0;
  }

  /**
   * Sends the output stash, then what OpenSSL wrote, until the socket is full.
   *
   * @returns 0 when everything went out, `WOULD_BLOCK` (the rest is stashed) or
   *   `IO_FAILED` (output dropped, errno kept).
   */
  #flush(fd: number): number {
    const stash = this.#outStash;
    if (stash !== null) {
      const rest = stash.length - this.#outOff;
      const n = sendFrom(fd, this.#outOff === 0 ? stash : stash.subarray(this.#outOff), rest);
      if (n === IO_FAILED) return this.#sendFailed();
      if (n !== rest) {
        this.#outOff += n > 0 ? n : 0;
        if (C.BIO_ctrlInt(wbio, BIO_CTRL_PENDING, 0n, null) > 0) {
          this.#stashOutput(stash.subarray(this.#outOff));
        }
        return WOULD_BLOCK;
      }
      this.#outStash = null;
      this.#outOff = 0;
    }
    for (;;) {
      const k = C.BIO_read(wbio, cipherOut, OUT_SIZE);
      if (k <= 0) return 0;
      const n = sendFrom(fd, cipherOut, k);
      if (n === k) {
        if (k < OUT_SIZE) return 0;
        continue;
      }
      if (n === IO_FAILED) return this.#sendFailed();
      this.#stashOutput(cipherOut.subarray(n > 0 ? n : 0, k));
      return WOULD_BLOCK;
    }
  }

  #sendFailed(): number {
    this.#outStash = null;
    this.#outOff = 0;
    this.#covers = 0;
    C.BIO_ctrl(wbio, BIO_CTRL_RESET, 0n, null);
    this.lastError = lastIoError();
    this.lastErrorMessage = `TLS send failed (errno ${this.lastError})`;
    return IO_FAILED;
  }

  /** Empties the shared BIOs after a failure (nothing of this session may stay there). */
  #dropShared(): void {
    C.BIO_ctrl(rbio, BIO_CTRL_RESET, 0n, null);
    C.BIO_ctrl(wbio, BIO_CTRL_RESET, 0n, null);
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Advances the handshake.
   *
   * @param fd The descriptor.
   * @returns A handshake step.
   */
  handshake(fd: number): HandshakeStep {
    const ssl = this.#ssl;
    if (ssl === null) return HANDSHAKE_FAILED;
    if (this.#outStash !== null) {
      const o = this.#flush(fd);
      if (o === WOULD_BLOCK) return HANDSHAKE_WANT_WRITE;
      if (o === IO_FAILED) return this.#handshakeFailed(this.lastErrorMessage);
    }
    if (this.#done) return HANDSHAKE_DONE;
    this.#feed();
    for (let round = 0; round < 64; round++) {
      const r = S.SSL_do_handshake(ssl);
      const e = errno();
      const err = r === 1 ? 0 : S.SSL_get_error(ssl, r);
      const o = this.#flush(fd);
      if (o === IO_FAILED) {
        takeOpenSslErrors();
        C.BIO_ctrl(rbio, BIO_CTRL_RESET, 0n, null);
        return this.#handshakeFailed(this.lastErrorMessage);
      }
      if (r === 1) {
        this.#done = true;
        this.#leave();
        this.#keepInput();
        this.pending = S.SSL_has_pending(ssl) === 1 || this.#inStash !== null;
        this.context.stats.handshakesCompleted++;
        return o === WOULD_BLOCK ? HANDSHAKE_WANT_WRITE : HANDSHAKE_DONE;
      }
      if (err !== SSL_ERROR_WANT_READ) {
        const why = describeFailure(ssl, this.context.role, err, e, takeOpenSslErrors());
        this.#dropShared();
        return this.#handshakeFailed(`TLS handshake: ${why}`, err === SSL_ERROR_SYSCALL ? e : 0);
      }
      if (o === WOULD_BLOCK) {
        this.#keepInput();
        return HANDSHAKE_WANT_WRITE;
      }
      const n = recvInto(fd, cipherIn, IN_LEN);
      if (n > 0) {
        C.BIO_write(rbio, cipherIn, n);
        continue;
      }
      if (n === WOULD_BLOCK) return HANDSHAKE_WANT_READ;
      this.#dropShared();
      return this.#handshakeFailed(
        n === 0 ? "TLS handshake: the peer closed the connection" : "TLS handshake: recv failed",
        n === 0 ? 0 : lastIoError(),
      );
    }
    return HANDSHAKE_WANT_READ;
  }

  #handshakeFailed(message: string, e = 0): HandshakeStep {
    this.lastError = e;
    this.lastErrorMessage = message;
    this.context.stats.handshakeFailed(message);
    this.#leave();
    return HANDSHAKE_FAILED;
  }

  // ---------------------------------------------------------------- read

  /**
   * Reads decrypted bytes into the start of `buf`.
   *
   * @param fd The descriptor.
   * @param buf Destination.
   * @param length Room in `buf`.
   * @returns bytes (> 0), 0 at the end of the stream, `WOULD_BLOCK` or `IO_FAILED`.
   */
  read(fd: number, buf: Uint8Array, length: bigint): number {
    const ssl = this.#ssl;
    if (ssl === null) return IO_FAILED;
    if (this.#deferred !== DEFERRED_NONE) {
      const d = this.#deferred;
      this.#deferred = DEFERRED_NONE;
      this.pending = false;
      return d === DEFERRED_EOF ? 0 : IO_FAILED;
    }
    this.wants = 0;
    if (this.#outStash !== null && this.#flush(fd) === IO_FAILED) return IO_FAILED;
    const cap = Number(length);
    let got = 0;
    if (this.pending) {
      this.#feed();
      got = this.#decrypt(ssl, buf, length, cap);
    }
    for (let round = 0; got === 0 && round < 4; round++) {
      const n = recvInto(fd, cipherIn, IN_LEN);
      if (n <= 0) {
        this.pending = false;
        if (n === IO_FAILED) {
          this.lastError = lastIoError();
          this.lastErrorMessage = `TLS read: recv failed (errno ${this.lastError})`;
          this.context.stats.ioFailed(this.lastErrorMessage);
        }
        this.#keepInput();
        return n;
      }
      C.BIO_write(rbio, cipherIn, n);
      got = this.#decrypt(ssl, buf, length, cap);
      if (got === 0 && n < IN_SIZE) break;
    }
    this.#keepInput();
    if (this.#flush(fd) === IO_FAILED) return IO_FAILED;
    if (got === 0) {
      this.pending = false;
      return WOULD_BLOCK;
    }
    if (got === END) return 0;
    if (got === FAILED) return IO_FAILED;
    this.pending = this.#deferred !== DEFERRED_NONE || this.#inStash !== null ||
      (got === cap && S.SSL_has_pending(ssl) === 1);
    return got;
  }

  /**
   * Decrypts what the shared input BIO and OpenSSL hold into `buf`.
   *
   * @returns bytes (> 0), 0 when more input is needed, {@link END} or {@link FAILED}.
   */
  #decrypt(ssl: Deno.PointerObject, buf: Uint8Array, length: bigint, cap: number): number {
    let total = 0;
    while (total < cap) {
      const r = total === 0
        ? S.SSL_read_ex(ssl, buf, length, countOut)
        : S.SSL_read_exAddr(ssl, BigInt(bufferAddress(buf) + total), BigInt(cap - total), countOut);
      if (r === 1) {
        total += count32[0];
        continue;
      }
      const e = errno();
      const err = S.SSL_get_error(ssl, r);
      if (err === SSL_ERROR_WANT_READ) return total;
      if (err === SSL_ERROR_WANT_WRITE) {
        this.wants = Interest.WRITABLE;
        return total;
      }
      let end = err === SSL_ERROR_ZERO_RETURN;
      if (end) this.#closeNotifyReceived = true;
      else if (err === SSL_ERROR_SSL) {
        end = takeOpenSslReason(reasonText) === SSL_R_UNEXPECTED_EOF_WHILE_READING;
        if (!end) this.#readFailed(ssl, err, e, reasonText[0]);
      } else {
        this.#readFailed(ssl, err, e, takeOpenSslErrors());
      }
      if (total > 0) {
        this.#deferred = end ? DEFERRED_EOF : DEFERRED_FAILED;
        return total;
      }
      return end ? END : FAILED;
    }
    return total;
  }

  #readFailed(ssl: Deno.PointerObject, err: number, e: number, queued: string): void {
    this.lastError = err === SSL_ERROR_SYSCALL ? e : 0;
    this.lastErrorMessage = `TLS read: ${describeFailure(ssl, this.context.role, err, e, queued)}`;
    this.context.stats.ioFailed(this.lastErrorMessage);
    this.#dropShared();
  }

  // ---------------------------------------------------------------- write

  /**
   * Encrypts and sends the first `length` bytes of `buf` (same-buffer rule as
   * {@link TlsMemoryTransport.writeAddress}).
   *
   * @param fd The descriptor.
   * @param buf Source.
   * @param length Bytes to send.
   * @returns bytes taken, `WOULD_BLOCK` or `IO_FAILED`.
   */
  write(fd: number, buf: Uint8Array, length: number): number {
    return this.#write(fd, buf, 0, length);
  }

  /**
   * Encrypts and sends `length` bytes from a raw address. After a short count or
   * `WOULD_BLOCK` the next write must start with the bytes not taken.
   *
   * @param fd The descriptor.
   * @param address Address of the first byte.
   * @param length Bytes to send.
   * @returns bytes taken, `WOULD_BLOCK` or `IO_FAILED`.
   */
  writeAddress(fd: number, address: number, length: number): number {
    return this.#write(fd, null, address, length);
  }

  #write(fd: number, buf: Uint8Array | null, address: number, length: number): number {
    const ssl = this.#ssl;
    if (ssl === null) return IO_FAILED;
    if (length <= 0) return 0;
    this.wants = 0;
    if (this.#outStash !== null) {
      const o = this.#flush(fd);
      if (o !== 0) return o;
    }
    // Records of the first `covers` bytes went out (here, or when a read flushed them).
    let off = this.#covers;
    if (off > 0) {
      this.#covers = 0;
      if (off > length) {
        this.lastErrorMessage = "TLS write: the retry is shorter than the bytes already encrypted";
        this.context.stats.ioFailed(this.lastErrorMessage);
        return IO_FAILED;
      }
      if (off === length) return off;
    }
    let base = address;
    while (off < length) {
      const start = off;
      const end = Math.min(length, off + CHUNK);
      while (off < end) {
        let n: number;
        if (buf !== null && off === 0) n = S.SSL_write(ssl, buf, end);
        else {
          if (buf !== null && base === 0) base = bufferAddress(buf);
          n = S.SSL_writeAddr(ssl, BigInt(base + off), end - off);
        }
        if (n <= 0) {
          const e = errno();
          const err = S.SSL_get_error(ssl, n);
          this.lastError = err === SSL_ERROR_SYSCALL ? e : 0;
          this.lastErrorMessage = `TLS write: ${
            describeFailure(ssl, this.context.role, err, e, takeOpenSslErrors())
          }`;
          this.context.stats.ioFailed(this.lastErrorMessage);
          this.#dropShared();
          return start > 0 ? start : IO_FAILED;
        }
        off += n;
      }
      const o = this.#flush(fd);
      if (o === 0) continue;
      if (o === IO_FAILED) return start > 0 ? start : IO_FAILED;
      // The stash holds records of [start, off): the caller retries them, they are skipped.
      this.#covers = off - start;
      return start > 0 ? start : WOULD_BLOCK;
    }
    return off;
  }

  // ---------------------------------------------------------------- end

  /**
   * close_notify (best effort) then FIN.
   *
   * @param fd The descriptor.
   */
  shutdownWrite(fd: number): void {
    const ssl = this.#ssl;
    if (ssl !== null && this.#done && !this.#shutdownSent) {
      this.#shutdownSent = true;
      if (S.SSL_shutdown(ssl) < 0) takeOpenSslErrors();
      this.#flush(fd);
      C.BIO_ctrl(wbio, BIO_CTRL_RESET, 0n, null);
    }
    shutdownFd(fd, "write");
  }

  /**
   * Frees the session and closes the descriptor.
   *
   * @param fd The descriptor.
   */
  close(fd: number): void {
    const ssl = this.#ssl;
    if (ssl !== null) {
      this.#ssl = null;
      this.#leave();
      S.SSL_free(ssl);
      this.#inStash = null;
      this.#outStash = null;
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

  /** Never: kTLS needs OpenSSL's socket BIO. */
  get ktlsSend(): boolean {
    return false;
  }

  /** The protocol ALPN agreed on, or null. */
  get alpnProtocol(): string | null {
    return this.#ssl === null ? null : selectedAlpn(this.#ssl);
  }

  /** The protocol version (`"TLSv1.3"`). */
  get protocol(): string {
    return this.#ssl === null ? "" : cString(S.SSL_get_version(this.#ssl));
  }

  /** The cipher suite. */
  get cipher(): string {
    if (this.#ssl === null) return "";
    const c = S.SSL_get_current_cipher(this.#ssl);
    return c === null ? "" : cString(S.SSL_CIPHER_get_name(c));
  }

  /** The server name the client sent (SNI), or "". */
  get serverName(): string {
    return this.#ssl === null
      ? ""
      : cString(S.SSL_get_servername(this.#ssl, TLSEXT_NAMETYPE_host_name));
  }

  /** True once a read met the peer's close_notify. */
  get closeNotifyReceived(): boolean {
    return this.#closeNotifyReceived;
  }
}

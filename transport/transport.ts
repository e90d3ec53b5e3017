/**
 * The transport seam: how a connection's bytes cross its descriptor. Plain TCP passes them
 * to the kernel as they are; TLS encrypts them first. Everything above (the HTTP phase of
 * the server and the client, the WebSocket connection, the corked outbox) reads and writes
 * through a {@link Transport} and never calls `recv`/`send` itself.
 *
 * Results are numbers, as in `net/io.ts`: bytes (>= 0), {@link WOULD_BLOCK} or
 * {@link IO_FAILED}; these calls run once per ready descriptor per loop tick, and a reset
 * peer is an ordinary event there, not an exceptional one.
 *
 * @module
 */

import { IO_FAILED, WOULD_BLOCK } from "../net/io.ts";

export { IO_FAILED, WOULD_BLOCK };

/** {@link Transport.handshake}: the transport is ready for application bytes. */
export const HANDSHAKE_DONE = 0;
/** {@link Transport.handshake}: call again when the descriptor is readable. */
export const HANDSHAKE_WANT_READ = 1;
/** {@link Transport.handshake}: call again when the descriptor is writable. */
export const HANDSHAKE_WANT_WRITE = 2;
/** {@link Transport.handshake}: the handshake failed; the connection must be closed. */
export const HANDSHAKE_FAILED = 3;

/** What {@link Transport.handshake} returns. */
export type HandshakeStep = 0 | 1 | 2 | 3;

/**
 * Bytes in and out of one connection's descriptor. A transport may keep per-connection
 * state (a TLS session); plain TCP keeps none and one instance serves every connection.
 */
export interface Transport {
  /** `"tcp"` or `"tls"`. */
  readonly kind: "tcp" | "tls";
  /**
   * Advances the transport's own handshake. Plain TCP is done at once; TLS returns
   * {@link HANDSHAKE_WANT_READ} or {@link HANDSHAKE_WANT_WRITE} until it is done.
   */
  handshake(fd: number): HandshakeStep;
  /**
   * Reads up to `length` bytes into the start of `buf`.
   *
   * @returns bytes (> 0), 0 at the end of the stream, {@link WOULD_BLOCK} or {@link IO_FAILED}.
   */
  read(fd: number, buf: Uint8Array, length: bigint): number;
  /**
   * Writes the first `length` bytes of `buf`. A write that returned {@link WOULD_BLOCK} must
   * be retried with the same bytes first (TLS keeps a record half-sent until then).
   *
   * @returns bytes taken (>= 0), {@link WOULD_BLOCK} or {@link IO_FAILED}.
   */
  write(fd: number, buf: Uint8Array, length: number): number;
  /** As {@link Transport.write}, from a raw address (the outbox arena). */
  writeAddress(fd: number, address: number, length: number): number;
  /**
   * True when the transport holds received bytes that a {@link Transport.read} would return
   * although the descriptor is not readable (decrypted TLS records). The poller cannot see
   * them, so the reader must come back without waiting for readiness.
   */
  readonly pending: boolean;
  /**
   * Readiness the transport needs beyond what its user asked for (`Interest` bits): TLS may
   * need to write to make a read progress, or read to make a write progress. 0 for TCP.
   */
  readonly wants: number;
  /** errno (or a transport-specific code) of the last {@link IO_FAILED}; 0 when unknown. */
  readonly lastError: number;
  /** Human-readable cause of the last failure ("" when none). */
  readonly lastErrorMessage: string;
  /**
   * Ends the write direction after what was written (TLS: close_notify, then FIN); errors
   * are ignored.
   */
  shutdownWrite(fd: number): void;
  /** Releases the transport's state and closes the descriptor. */
  close(fd: number): void;
}

/**
 * recv/send on non-blocking sockets that report "would block" and connection errors as
 * return values instead of exceptions: these run once per ready descriptor per loop tick,
 * and a reset peer is an ordinary event there, not an exceptional one.
 *
 * @module
 */

import { errno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";

/** Returned when the call would block (EAGAIN/EWOULDBLOCK). */
export const WOULD_BLOCK = -1;
/** Returned when the call failed; {@link lastIoError} holds the errno. */
export const IO_FAILED = -2;

let lastError = 0;

/** errno of the last {@link IO_FAILED} result of this module's functions. */
export function lastIoError(): number {
  return lastError;
}

const lib = libc();
const sym = lib.sym;
const EAGAIN = lib.c.errno.EAGAIN;
const EINTR = lib.c.errno.EINTR;
const SEND_FLAGS = lib.c.MSG_NOSIGNAL;
/** {@link failure}'s answer for EINTR: call again. */
const RETRY = -3;

/**
 * Classifies a call that returned -1, from errno read at once: {@link WOULD_BLOCK}
 * (EAGAIN), `RETRY` (EINTR) or {@link IO_FAILED} (errno kept for {@link lastIoError}).
 */
function failure(): number {
  const e = errno();
  if (e === EAGAIN) return WOULD_BLOCK;
  if (e === EINTR) return RETRY;
  lastError = e;
  return IO_FAILED;
}

/**
 * Reads up to `length` bytes into the start of `buf`. `length` is a BigInt because a
 * number leaves the FFI fast path; callers keep one per buffer size.
 *
 * @returns bytes read (> 0), 0 at end of stream, {@link WOULD_BLOCK} or {@link IO_FAILED}.
 *
 * @example
 * ```ts
 * import { recvInto, WOULD_BLOCK } from "./io.ts";
 *
 * declare const fd: number; // a connected non-blocking socket
 * const buf = new Uint8Array(65536);
 * const n = recvInto(fd, buf, 65536n);
 * if (n === WOULD_BLOCK) console.log("nothing yet");
 * ```
 */
export function recvInto(fd: number, buf: Uint8Array, length: bigint): number {
  for (;;) {
    const n = sym.recv(fd, buf, length, 0);
    if (n >= 0) return n;
    const f = failure();
    if (f !== RETRY) return f;
  }
}

/**
 * Sends `length` bytes from the start of `buf` (never raising SIGPIPE).
 *
 * @returns bytes accepted by the kernel (possibly fewer), {@link WOULD_BLOCK} or {@link IO_FAILED}.
 */
export function sendFrom(fd: number, buf: Uint8Array, length: number): number {
  for (;;) {
    const n = sym.send(fd, buf, BigInt(length), SEND_FLAGS);
    if (n >= 0) return n;
    const f = failure();
    if (f !== RETRY) return f;
  }
}

let lastAddress = -1;
let lastAddressBig = 0n;
let lastLength = -1;
let lastLengthBig = 0n;

/**
 * Sends `length` bytes starting at a raw address (an arena whose address was taken once
 * with `Deno.UnsafePointer`): sends a slice of a shared buffer without a subarray per call.
 * The caller keeps the buffer alive and unmoved for the duration of the call.
 */
export function sendFromAddress(fd: number, address: number, length: number): number {
  // A broadcast sends the same slice to every connection: reuse its BigInts.
  if (address !== lastAddress) {
    lastAddress = address;
    lastAddressBig = BigInt(address);
  }
  if (length !== lastLength) {
    lastLength = length;
    lastLengthBig = BigInt(length);
  }
  for (;;) {
    const n = sym.sendAddr(fd, lastAddressBig, lastLengthBig, SEND_FLAGS);
    if (n >= 0) return n;
    const f = failure();
    if (f !== RETRY) return f;
  }
}

/**
 * The address of a buffer's first byte, as a number, for {@link sendFromAddress}. Taking
 * it costs ~400 ns: do it once per long-lived buffer, never per call. The buffer must be
 * backed by an `ArrayBuffer` allocated with `new ArrayBuffer` (off the V8 heap, never moved).
 */
export function addressOf(buf: Uint8Array): number {
  const p = Deno.UnsafePointer.of(buf);
  return p === null ? 0 : Number(Deno.UnsafePointer.value(p));
}

/**
 * A doorbell: a descriptor that any thread of the process can make readable, so that a
 * worker sleeping in its poller wakes up because another worker wrote something for it.
 * Linux: one eventfd(2) (one descriptor for both ends; a write adds to its counter, one
 * read resets it). Elsewhere: a non-blocking pipe (a byte per ring, drained in bulk).
 *
 * Descriptors are process-wide: the number is handed to the other workers as is.
 *
 * @module
 */

import { EVENTFD } from "../../ffi/constants.ts";
import { errno } from "../../ffi/errno.ts";
import { setNonBlockingCloseOnExec } from "../../ffi/descriptor.ts";
import { libc } from "../../ffi/libc.ts";
import { WorkersBackplaneError } from "./errors.ts";

/**
 * The two ends of a doorbell (the same descriptor for an eventfd). A plain object, so that
 * it can be posted to another worker.
 *
 * @example
 * ```ts
 * import type { Doorbell } from "./doorbell.ts";
 * const bell: Doorbell = { read: 7, write: 7 };
 * console.log(bell.read === bell.write); // true (an eventfd)
 * ```
 */
export interface Doorbell {
  /** The end the owner's poller watches and drains. */
  readonly read: number;
  /** The end other threads write to. */
  readonly write: number;
}

const one = new BigUint64Array([1n]);
const oneByte = new Uint8Array([1]);
const drain = new Uint8Array(256);

/**
 * Creates a doorbell (non-blocking, close-on-exec).
 *
 * @throws {WorkersBackplaneError} `DOORBELL_FAILED` when the system refuses (descriptor limit).
 *
 * @example
 * ```ts
 * import { closeDoorbell, drainDoorbell, openDoorbell, ringDoorbell } from "./doorbell.ts";
 * const bell = openDoorbell();
 * ringDoorbell(bell);
 * drainDoorbell(bell);
 * closeDoorbell(bell);
 * ```
 */
export function openDoorbell(): Doorbell {
  const lib = libc();
  const c = lib.c;
  if (lib.linux !== null) {
    const fd = lib.linux.eventfd(0, EVENTFD.NONBLOCK | EVENTFD.CLOEXEC);
    if (fd < 0) {
      throw new WorkersBackplaneError("DOORBELL_FAILED", `eventfd failed (errno ${errno()})`);
    }
    return { read: fd, write: fd };
  }
  const fds = new Int32Array(2);
  if (lib.pipe2 !== null) {
    if (lib.pipe2(fds, c.O_NONBLOCK | c.O_CLOEXEC) < 0) {
      throw new WorkersBackplaneError("DOORBELL_FAILED", `pipe2 failed (errno ${errno()})`);
    }
  } else {
    if (lib.sym.pipe(fds) < 0) {
      throw new WorkersBackplaneError("DOORBELL_FAILED", `pipe failed (errno ${errno()})`);
    }
    for (const fd of fds) {
      const e = setNonBlockingCloseOnExec(lib, fd);
      if (e !== 0) {
        lib.sym.close(fds[0]);
        lib.sym.close(fds[1]);
        throw new WorkersBackplaneError("DOORBELL_FAILED", `fcntl failed (errno ${e})`);
      }
    }
  }
  return { read: fds[0], write: fds[1] };
}

/**
 * Makes the doorbell readable. Never blocks and never throws: a full pipe or a counter
 * that cannot grow means a ring is pending already.
 */
export function ringDoorbell(bell: Doorbell): void {
  const lib = libc();
  if (bell.read === bell.write) lib.sym.write(bell.write, one, 8n);
  else lib.sym.write(bell.write, oneByte, 1n);
}

/** Consumes every ring so far: the descriptor is not readable until the next one. */
export function drainDoorbell(bell: Doorbell): void {
  const lib = libc();
  if (bell.read === bell.write) {
    lib.sym.read(bell.read, drain, 8n);
    return;
  }
  while (lib.sym.read(bell.read, drain, 256n) === 256);
}

/** Closes the doorbell's descriptors. */
export function closeDoorbell(bell: Doorbell): void {
  const lib = libc();
  lib.sym.close(bell.read);
  if (bell.write !== bell.read) lib.sym.close(bell.write);
}

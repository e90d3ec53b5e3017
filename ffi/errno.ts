/**
 * errno access and the error class of failed system calls.
 *
 * errno is thread-local: it is read through the calling thread's errno location, right
 * after a call returned -1 and before anything else can run on this thread. Calls made
 * with `nonblocking: true` run on another thread, so their errno is never read here.
 *
 * @module
 */

import type { ErrnoName } from "./constants.ts";
import { libc } from "./libc.ts";
import { FdwsError } from "../errors.ts";

/** Reads this thread's errno. Meaningful only right after a call that returned -1. */
export function errno(): number {
  return libc().errnoView.getInt32(0);
}

let names: Map<number, ErrnoName> | null = null;

/**
 * The symbolic name of an errno value on this system (`"ECONNRESET"`), or `"E<number>"`
 * for values this package does not name.
 *
 * @example
 * ```ts
 * import { errnoName } from "./errno.ts";
 * console.log(errnoName(11)); // "EAGAIN" on Linux
 * ```
 */
export function errnoName(value: number): string {
  if (names === null) {
    names = new Map();
    const table = libc().c.errno;
    for (const name of Object.keys(table) as ErrnoName[]) names.set(table[name], name);
  }
  return names.get(value) ?? `E${value}`;
}

const DESCRIPTIONS: Partial<Record<ErrnoName, string>> = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EINTR: "interrupted system call",
  EBADF: "bad file descriptor",
  EAGAIN: "resource temporarily unavailable",
  ENOMEM: "cannot allocate memory",
  EACCES: "permission denied",
  EINVAL: "invalid argument",
  ENFILE: "too many open files in system",
  EMFILE: "too many open files (raise `ulimit -n`)",
  EPIPE: "broken pipe",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address",
  ECONNABORTED: "connection aborted",
  ECONNRESET: "connection reset by peer",
  ECONNREFUSED: "connection refused",
  ENOBUFS: "no buffer space available",
  ENOTCONN: "socket is not connected",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network is unreachable",
  EAFNOSUPPORT: "address family not supported",
  EINPROGRESS: "operation now in progress",
};

/**
 * A system call that failed. `code` is the symbolic errno name (`"EADDRINUSE"`), `errno`
 * its number on this system and `syscall` the C function that failed.
 *
 * @example
 * ```ts
 * import { SyscallError } from "./errno.ts";
 * try {
 *   // ... listen(...) ...
 * } catch (err) {
 *   if (err instanceof SyscallError && err.code === "EADDRINUSE") console.log("port taken");
 * }
 * ```
 */
export class SyscallError extends FdwsError {
  /** The C function that failed, e.g. `"bind"`. */
  readonly syscall: string;
  /** The errno number on this system. */
  readonly errno: number;

  /**
   * Creates the error from an errno value.
   *
   * @param syscall Name of the failed C function.
   * @param errnoValue errno read right after the failure.
   * @param detail Optional context (an address, a descriptor).
   */
  constructor(syscall: string, errnoValue: number, detail?: string) {
    const code = errnoName(errnoValue);
    const what = DESCRIPTIONS[code as ErrnoName] ?? "system error";
    super(code, `${syscall}: ${code} (${what})${detail ? `: ${detail}` : ""}`);
    this.name = "SyscallError";
    this.syscall = syscall;
    this.errno = errnoValue;
  }
}

/**
 * Throws a {@link SyscallError} built from the current errno. Call it only right after a
 * call returned -1.
 */
export function fail(syscall: string, detail?: string): never {
  throw new SyscallError(syscall, errno(), detail);
}

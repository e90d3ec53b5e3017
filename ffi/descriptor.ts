/**
 * O_NONBLOCK and FD_CLOEXEC set after the fact, for descriptors whose creating call could
 * not take them: macOS has no SOCK_NONBLOCK/SOCK_CLOEXEC, accept4 or pipe2, and kqueue()
 * takes no flags anywhere. Every descriptor this package opens is both.
 *
 * The functions return an errno instead of throwing, so that the caller, which knows
 * whether the descriptor is worth keeping, decides what to close and what to report.
 *
 * @module
 */

import { errno } from "./errno.ts";
import type { Libc } from "./libc.ts";

/**
 * Adds O_NONBLOCK to the file status flags of `fd`, keeping the others.
 *
 * @returns 0, or the errno of the fcntl call that failed.
 *
 * @example
 * ```ts
 * import { setNonBlocking } from "./descriptor.ts";
 * import { libc } from "./libc.ts";
 * console.log(setNonBlocking(libc(), -1) !== 0); // true: EBADF
 * ```
 */
export function setNonBlocking(lib: Libc, fd: number): number {
  const c = lib.c;
  const flags = lib.fcntl(fd, c.F_GETFL, 0);
  if (flags < 0) return errno();
  if ((flags & c.O_NONBLOCK) !== 0) return 0;
  return lib.fcntl(fd, c.F_SETFL, flags | c.O_NONBLOCK) < 0 ? errno() : 0;
}

/**
 * Sets FD_CLOEXEC on `fd`: the descriptor does not leak into programs the process runs.
 * FD_CLOEXEC is the only descriptor flag POSIX defines, so it is set, not or-ed in.
 *
 * @returns 0, or the errno of the fcntl call.
 *
 * @example
 * ```ts
 * import { setCloseOnExec } from "./descriptor.ts";
 * import { libc } from "./libc.ts";
 * console.log(setCloseOnExec(libc(), -1) !== 0); // true: EBADF
 * ```
 */
export function setCloseOnExec(lib: Libc, fd: number): number {
  return lib.fcntl(fd, lib.c.F_SETFD, lib.c.FD_CLOEXEC) < 0 ? errno() : 0;
}

/**
 * Makes `fd` non-blocking and close-on-exec.
 *
 * @returns 0, or the errno of the first call that failed.
 *
 * @example
 * ```ts
 * import { setNonBlockingCloseOnExec } from "./descriptor.ts";
 * import { libc } from "./libc.ts";
 * const lib = libc();
 * const fds = new Int32Array(2);
 * if (lib.sym.pipe(fds) === 0) {
 *   console.log(setNonBlockingCloseOnExec(lib, fds[0]), setNonBlockingCloseOnExec(lib, fds[1])); // 0 0
 *   lib.sym.close(fds[0]);
 *   lib.sym.close(fds[1]);
 * }
 * ```
 */
export function setNonBlockingCloseOnExec(lib: Libc, fd: number): number {
  const e = setNonBlocking(lib, fd);
  return e !== 0 ? e : setCloseOnExec(lib, fd);
}

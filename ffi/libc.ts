/**
 * The process-wide handle on the C library, opened lazily on first use.
 *
 * @module
 */

import { type Constants, constantsFor } from "./constants.ts";
import { BSD_SYMBOLS, COMMON_SYMBOLS, FREEBSD_SYMBOLS, LINUX_SYMBOLS } from "./symbols.ts";
import { FdwsError } from "../errors.ts";

type Common = Deno.DynamicLibrary<typeof COMMON_SYMBOLS>["symbols"];
type Linux = Deno.DynamicLibrary<typeof LINUX_SYMBOLS>["symbols"];
type Bsd = Deno.DynamicLibrary<typeof BSD_SYMBOLS>["symbols"];
type FreeBsd = Deno.DynamicLibrary<typeof FREEBSD_SYMBOLS>["symbols"];

/** The bound C library: common symbols plus the system-specific groups that exist here. */
export interface Libc {
  /** Symbols every supported system has. */
  readonly sym: Common;
  /** glibc/Linux symbols (epoll, eventfd, accept4, pipe2), or null elsewhere. */
  readonly linux: Linux | null;
  /** BSD symbols (kqueue, kevent, __error), or null elsewhere. */
  readonly bsd: Bsd | null;
  /** accept4/pipe2 where they exist (Linux, FreeBSD), or null (macOS). */
  readonly accept4: FreeBsd["accept4"] | null;
  /** pipe2 where it exists (Linux, FreeBSD), or null (macOS). */
  readonly pipe2: FreeBsd["pipe2"] | null;
  /** Constants of this system. */
  readonly c: Constants;
  /** Pointer to this thread's errno. */
  readonly errnoView: Deno.UnsafePointerView;
}

/** Library path per system: glibc's soname on Linux, libSystem on macOS, libc.so.7 on FreeBSD. */
export function libraryPath(os: string = Deno.build.os): string {
  switch (os) {
    case "linux":
      return "libc.so.6";
    case "darwin":
      return "/usr/lib/libSystem.B.dylib";
    case "freebsd":
      return "libc.so.7";
    default:
      throw new FdwsError("UNSUPPORTED_PLATFORM", `fdws: unsupported operating system "${os}"`);
  }
}

let instance: Libc | null = null;

/**
 * Returns the process-wide C library binding, opening it on first call.
 *
 * Needs `--allow-ffi`. The library stays open for the life of the isolate: its
 * nonblocking symbols may still be running on worker threads when callers are done.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * const { sym } = libc();
 * console.log(sym.close(-1)); // -1 (EBADF)
 * ```
 */
export function libc(): Libc {
  if (instance !== null) return instance;
  const os = Deno.build.os;
  const c = constantsFor(os);
  const path = libraryPath(os);
  const common = Deno.dlopen(path, COMMON_SYMBOLS).symbols;
  let linux: Linux | null = null;
  let bsd: Bsd | null = null;
  let fbsd: FreeBsd | null = null;
  let errnoPtr: Deno.PointerValue;
  if (os === "linux") {
    linux = Deno.dlopen(path, LINUX_SYMBOLS).symbols;
    errnoPtr = linux.__errno_location();
  } else {
    bsd = Deno.dlopen(path, BSD_SYMBOLS).symbols;
    errnoPtr = bsd.__error();
    if (os === "freebsd") fbsd = Deno.dlopen(path, FREEBSD_SYMBOLS).symbols;
  }
  if (errnoPtr === null) {
    throw new FdwsError("ERRNO_UNAVAILABLE", "fdws: the C library returned no errno location");
  }
  instance = {
    sym: common,
    linux,
    bsd,
    accept4: linux?.accept4 ?? fbsd?.accept4 ?? null,
    pipe2: linux?.pipe2 ?? fbsd?.pipe2 ?? null,
    c,
    errnoView: new Deno.UnsafePointerView(errnoPtr),
  };
  return instance;
}

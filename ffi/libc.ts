/**
 * The process-wide handle on the C library, opened lazily on first use.
 *
 * @module
 */

import { type Constants, constantsFor } from "./constants.ts";
import {
  BSD_SYMBOLS,
  COMMON_SYMBOLS,
  FCNTL_APPLE_ARM64_SYMBOLS,
  FCNTL_SYMBOLS,
  FREEBSD_SYMBOLS,
  GLIBC_MALLOC_SYMBOLS,
  LINUX_SYMBOLS,
  variadicOnStack,
} from "./symbols.ts";
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
  /**
   * `fcntl(fd, cmd, arg)` with the integer `arg` passed where this platform's variadic
   * calling convention puts it (see `FCNTL_SYMBOLS`). Commands without an argument
   * (F_GETFL, F_GETFD) take 0. Returns what fcntl returns; errno is left untouched.
   */
  readonly fcntl: (fd: number, cmd: number, arg: number) => number;
  /**
   * glibc's `malloc_trim(0)` on a worker thread: returns the free pages of every malloc
   * arena to the system, settling when done. Null where it does not exist (musl, macOS,
   * FreeBSD, whose allocators give memory back on their own).
   */
  readonly mallocTrim: (() => Promise<void>) | null;
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

/**
 * Binds a C function shaped like fcntl, `int f(int, int, ...)` called with one integer
 * variadic argument, so that the argument goes where the callee's `va_arg` reads it on
 * this platform (see `FCNTL_SYMBOLS` for the reasoning per calling convention).
 *
 * @param path The shared library.
 * @param name The function's symbol name.
 * @param onStack Whether variadic arguments go on the stack (Apple arm64); by default
 *   the running platform's answer.
 * @returns `(a, b, arg) => result`.
 *
 * @example
 * ```ts
 * import { bindFcntlShaped, libraryPath } from "./libc.ts";
 * const fcntl = bindFcntlShaped(libraryPath(), "fcntl");
 * console.log(fcntl(0, 1, 0)); // F_GETFD of stdin
 * ```
 */
export function bindFcntlShaped(
  path: string,
  name: string,
  onStack: boolean = variadicOnStack(),
): (a: number, b: number, arg: number) => number {
  if (onStack) {
    const def = { f: { ...FCNTL_APPLE_ARM64_SYMBOLS.fcntl, name } } as const;
    const f = Deno.dlopen(path, def).symbols.f;
    return (a, b, arg) => f(a, b, 0n, 0n, 0n, 0n, 0n, 0n, BigInt(arg));
  }
  const f = Deno.dlopen(path, { f: { ...FCNTL_SYMBOLS.fcntl, name } } as const).symbols.f;
  return (a, b, arg) => f(a, b, BigInt(arg));
}

/** `malloc_trim(0)` of the C library at `path` (off the thread), or null when it has none. */
function bindMallocTrim(path: string): (() => Promise<void>) | null {
  try {
    const trim = Deno.dlopen(path, GLIBC_MALLOC_SYMBOLS).symbols.malloc_trim;
    return async () => void await trim(0n);
  } catch {
    return null;
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
 * ```ts
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
  const fcntl = bindFcntlShaped(path, "fcntl", variadicOnStack(os, Deno.build.arch));
  if (errnoPtr === null) {
    throw new FdwsError("ERRNO_UNAVAILABLE", "fdws: the C library returned no errno location");
  }
  instance = {
    sym: common,
    linux,
    bsd,
    accept4: linux?.accept4 ?? fbsd?.accept4 ?? null,
    pipe2: linux?.pipe2 ?? fbsd?.pipe2 ?? null,
    mallocTrim: os === "linux" ? bindMallocTrim(path) : null,
    fcntl,
    c,
    errnoView: new Deno.UnsafePointerView(errnoPtr),
  };
  return instance;
}

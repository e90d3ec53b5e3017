/**
 * The C library functions this package calls, with their FFI signatures.
 *
 * Type choices are deliberate and measured on Deno 2.9.6:
 * - `ssize_t` results are declared `i32`. A `usize`/`isize` result always comes back as a
 *   BigInt (an allocation per call, which could also disturb errno before we read it).
 *   Reading the low 32 bits of the 64-bit return register is exact for every value these
 *   calls can return here (-1, or a byte count below 2 GiB because no buffer we pass is
 *   larger), on both the x86_64 (eax/rax) and aarch64 (w0/x0) calling conventions.
 * - `size_t` parameters are `usize` and are passed BigInt values: a JS number leaves V8's
 *   fast call path (5-6x slower).
 * - Buffers we own are `buffer` parameters (fast path). The one exception is `sendAddr`,
 *   whose data pointer is a `usize` address into an arena whose address was taken once;
 *   it lets a connection send a slice of a shared buffer without creating a subarray per
 *   call (which doubles the cost of the call).
 *
 * @module
 */

/** Symbols present on every supported system. */
export const COMMON_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  sendAddr: { name: "send", parameters: ["i32", "usize", "usize", "i32"], result: "i32" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /**
   * `int open(const char *path, int flags, ...)` is variadic, but its third argument (the
   * mode) is read only when `flags` has O_CREAT (or O_TMPFILE on Linux): glibc, FreeBSD's
   * libc and Apple's libsyscall all call `va_arg` under that test alone. Without those
   * flags the call has only named arguments, which every ABI passes the same way, so this
   * two-argument binding is exact everywhere. Never pass O_CREAT through it.
   */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  pipe: { parameters: ["buffer"], result: "i32" },
  select: { parameters: ["i32", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  /** The same call on a worker thread: the JS event loop keeps running while it waits. */
  selectBlocking: {
    name: "select",
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  /** Synchronous: only for checking the addrinfo layout against this system's libc. */
  getaddrinfo: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  /** Name resolution may take seconds: run on a worker thread. */
  getaddrinfoBlocking: {
    name: "getaddrinfo",
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * `int fcntl(int fd, int cmd, ...)` is variadic, and a variadic argument does not travel
 * where a named one would on every ABI; Deno's FFI can only describe named arguments. The
 * binding is chosen per calling convention so that the third argument lands where the
 * callee's `va_arg` reads it:
 *
 * - x86_64 (System V: Linux, macOS, FreeBSD) and generic AAPCS64 (Linux and FreeBSD on
 *   aarch64): variadic arguments use the same registers as named ones, so the third
 *   argument is the third integer register (rdx / x2) either way: {@link FCNTL_SYMBOLS}.
 *   System V also wants %al to bound the vector registers a variadic call uses, which a
 *   fixed-argument call may leave unset; callees built by current GCC and clang only test
 *   it against zero to decide whether to spill xmm0-7 into their register save area
 *   (harmless when nothing reads them), and glibc's fcntl does not look at it at all.
 * - Apple arm64 ("Writing ARM64 code for Apple platforms", Variadic functions): named
 *   arguments are assigned as usual, then every variadic argument goes to the stack, in
 *   8-byte slots starting at the next 8-byte boundary of the argument area. fcntl's two
 *   named arguments take x0 and x1 and no stack, so its third argument is read from
 *   [sp, #0] at entry, whatever is in x2. {@link FCNTL_APPLE_ARM64_SYMBOLS} declares six
 *   named fillers for x2-x7, so its ninth argument is the first one on the stack: at
 *   [sp, #0]. It is declared 64-bit because Apple packs non-variadic stack arguments by
 *   their size, and an 8-byte argument fills the whole slot that `va_arg` reads.
 *
 * The argument is a 64-bit integer on both: C promotes an `int` argument to a full
 * register or 8-byte slot whose upper half is unspecified, and glibc (and FreeBSD's libc)
 * read it back as `void *` / `long` and hand all 64 bits to the kernel; a sign-extended
 * 64-bit value is what they would read for that `int`, with nothing left unspecified.
 */
export const FCNTL_SYMBOLS = {
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** fcntl(2) on Apple arm64: see {@link FCNTL_SYMBOLS}. The value is the ninth argument. */
export const FCNTL_APPLE_ARM64_SYMBOLS = {
  fcntl: {
    parameters: ["i32", "i32", "i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Whether a platform passes variadic arguments on the stack even while argument registers
 * are free (Apple arm64), which needs {@link FCNTL_APPLE_ARM64_SYMBOLS}.
 *
 * @param os `Deno.build.os` by default.
 * @param arch `Deno.build.arch` by default.
 * @returns True on macOS (and every Apple OS) on arm64.
 *
 * @example
 * ```ts
 * import { variadicOnStack } from "./symbols.ts";
 * console.log(variadicOnStack("darwin", "aarch64"), variadicOnStack("linux", "aarch64")); // true false
 * ```
 */
export function variadicOnStack(
  os: string = Deno.build.os,
  arch: string = Deno.build.arch,
): boolean {
  return os === "darwin" && arch === "aarch64";
}

/** glibc-only symbols (Linux). */
export const LINUX_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** The same call on a worker thread: the JS event loop keeps running while it waits. */
  epoll_waitBlocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * glibc's allocator control, bound on its own: a C library without it (musl) still serves
 * everything else.
 */
export const GLIBC_MALLOC_SYMBOLS = {
  /**
   * Gives the free memory of every malloc arena back to the system (`pad` bytes kept), on a
   * worker thread: on a large heap it takes milliseconds the loop must not stall for.
   */
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** Symbols of the BSD family (macOS, FreeBSD). */
export const BSD_SYMBOLS = {
  __error: { parameters: [], result: "pointer" },
  kqueue: { parameters: [], result: "i32" },
  kevent: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  /** The same call on a worker thread: the JS event loop keeps running while it waits. */
  keventBlocking: {
    name: "kevent",
    parameters: ["i32", "buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** FreeBSD has accept4 and pipe2 as well; macOS has neither. */
export const FREEBSD_SYMBOLS = {
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

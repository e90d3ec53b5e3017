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
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
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

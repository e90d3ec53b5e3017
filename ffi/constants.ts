/**
 * Numeric constants of the C library and kernel interfaces, per operating system.
 *
 * Every value here was taken from the system headers named beside it; the three tables
 * differ in many places (SOL_SOCKET, AF_INET6, errno numbers, MSG_NOSIGNAL, ...), which is
 * why nothing outside `ffi/` may hard-code one of them.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";

/** The operating systems whose C library this package binds. */
export type Platform = "linux" | "darwin" | "freebsd";

/** Socket, fcntl, epoll/kqueue and errno constants of one operating system. */
export interface Constants {
  /** Which system these values belong to. */
  readonly platform: Platform;
  // <sys/socket.h>
  readonly AF_UNIX: number;
  readonly AF_INET: number;
  readonly AF_INET6: number;
  readonly SOCK_STREAM: number;
  /** 0 where socket()/accept4() do not take the flag (macOS): fcntl is used instead. */
  readonly SOCK_NONBLOCK: number;
  /** 0 where socket()/accept4() do not take the flag (macOS): fcntl is used instead. */
  readonly SOCK_CLOEXEC: number;
  readonly SOL_SOCKET: number;
  readonly SO_REUSEADDR: number;
  readonly SO_REUSEPORT: number;
  readonly SO_ERROR: number;
  readonly SO_KEEPALIVE: number;
  readonly SO_SNDBUF: number;
  readonly SO_RCVBUF: number;
  /** macOS and FreeBSD: suppresses SIGPIPE per socket; 0 on Linux (MSG_NOSIGNAL is used). */
  readonly SO_NOSIGPIPE: number;
  /** Per-call SIGPIPE suppression; 0 on macOS, which has only SO_NOSIGPIPE. */
  readonly MSG_NOSIGNAL: number;
  readonly MSG_DONTWAIT: number;
  readonly SHUT_RD: number;
  readonly SHUT_WR: number;
  readonly SHUT_RDWR: number;
  // <netinet/in.h>, <netinet/tcp.h>
  readonly IPPROTO_TCP: number;
  readonly IPPROTO_IPV6: number;
  readonly IPV6_V6ONLY: number;
  readonly TCP_NODELAY: number;
  // <fcntl.h>
  readonly F_GETFD: number;
  readonly F_SETFD: number;
  readonly F_GETFL: number;
  readonly F_SETFL: number;
  readonly FD_CLOEXEC: number;
  readonly O_NONBLOCK: number;
  readonly O_RDONLY: number;
  readonly O_CLOEXEC: number;
  /** `select()` capacity: descriptors at or above it cannot be placed in an fd_set. */
  readonly FD_SETSIZE: number;
  /** errno values by symbolic name, for this system. */
  readonly errno: Readonly<Record<ErrnoName, number>>;
}

/** The errno names this package recognises by name. */
export type ErrnoName =
  | "EPERM"
  | "ENOENT"
  | "EINTR"
  | "EIO"
  | "EBADF"
  | "EAGAIN"
  | "ENOMEM"
  | "EACCES"
  | "EFAULT"
  | "EEXIST"
  | "EINVAL"
  | "ENFILE"
  | "EMFILE"
  | "ENOSPC"
  | "EPIPE"
  | "ENOSYS"
  | "EPROTO"
  | "ENOTSOCK"
  | "EOPNOTSUPP"
  | "EAFNOSUPPORT"
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "ENETDOWN"
  | "ENETUNREACH"
  | "ECONNABORTED"
  | "ECONNRESET"
  | "ENOBUFS"
  | "EISCONN"
  | "ENOTCONN"
  | "ETIMEDOUT"
  | "ECONNREFUSED"
  | "EHOSTUNREACH"
  | "EALREADY"
  | "EINPROGRESS";

/** Linux (glibc, asm-generic): <asm-generic/errno-base.h>, <asm-generic/errno.h>. */
const LINUX_ERRNO: Record<ErrnoName, number> = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENOSYS: 38,
  EPROTO: 71,
  ENOTSOCK: 88,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
};

/** The BSD numbering shared by macOS and FreeBSD: <sys/errno.h>. */
const BSD_ERRNO: Record<ErrnoName, number> = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 35,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENOSYS: 78,
  EPROTO: 100, // macOS; FreeBSD overrides below
  ENOTSOCK: 38,
  EOPNOTSUPP: 45, // FreeBSD; macOS overrides below (102)
  EAFNOSUPPORT: 47,
  EADDRINUSE: 48,
  EADDRNOTAVAIL: 49,
  ENETDOWN: 50,
  ENETUNREACH: 51,
  ECONNABORTED: 53,
  ECONNRESET: 54,
  ENOBUFS: 55,
  EISCONN: 56,
  ENOTCONN: 57,
  ETIMEDOUT: 60,
  ECONNREFUSED: 61,
  EHOSTUNREACH: 65,
  EALREADY: 37,
  EINPROGRESS: 36,
};

/** Linux, glibc on x86_64 and aarch64 (<bits/socket.h>, <asm-generic/socket.h>, <bits/fcntl-linux.h>). */
export const LINUX: Constants = {
  platform: "linux",
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_REUSEPORT: 15,
  SO_ERROR: 4,
  SO_KEEPALIVE: 9,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_NOSIGPIPE: 0,
  MSG_NOSIGNAL: 0x4000,
  MSG_DONTWAIT: 0x40,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  IPPROTO_TCP: 6,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 26,
  TCP_NODELAY: 1,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0o4000,
  O_RDONLY: 0,
  O_CLOEXEC: 0o2000000,
  FD_SETSIZE: 1024,
  errno: LINUX_ERRNO,
};

/**
 * What macOS and FreeBSD share: both inherit the 4.4BSD <sys/socket.h>, <netinet/in.h>,
 * <netinet/tcp.h> and <sys/fcntl.h> numbering. Each table below adds its differences.
 */
const BSD_COMMON = {
  AF_UNIX: 1,
  AF_INET: 2,
  SOCK_STREAM: 1,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x0004,
  SO_REUSEPORT: 0x0200,
  SO_ERROR: 0x1007,
  SO_KEEPALIVE: 0x0008,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  MSG_DONTWAIT: 0x80,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  IPPROTO_TCP: 6,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 27,
  TCP_NODELAY: 1,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x0004,
  O_RDONLY: 0,
  FD_SETSIZE: 1024,
} as const;

/** macOS (<sys/socket.h>, <sys/fcntl.h>, <netinet6/in6.h> of the macOS SDK). */
export const DARWIN: Constants = {
  ...BSD_COMMON,
  platform: "darwin",
  AF_INET6: 30,
  SOCK_NONBLOCK: 0,
  SOCK_CLOEXEC: 0,
  SO_NOSIGPIPE: 0x1022,
  MSG_NOSIGNAL: 0,
  O_CLOEXEC: 0x1000000,
  errno: { ...BSD_ERRNO, EOPNOTSUPP: 102 },
};

/** FreeBSD 12+ (<sys/socket.h>, <sys/fcntl.h>, <netinet6/in6.h>). */
export const FREEBSD: Constants = {
  ...BSD_COMMON,
  platform: "freebsd",
  AF_INET6: 28,
  SOCK_NONBLOCK: 0x20000000,
  SOCK_CLOEXEC: 0x10000000,
  SO_NOSIGPIPE: 0x0800,
  MSG_NOSIGNAL: 0x20000,
  O_CLOEXEC: 0x00100000,
  errno: { ...BSD_ERRNO, EPROTO: 92 },
};

/** epoll(7) constants (<sys/epoll.h>); Linux only. */
export const EPOLL = {
  CLOEXEC: 0o2000000,
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
  IN: 0x001,
  PRI: 0x002,
  OUT: 0x004,
  ERR: 0x008,
  HUP: 0x010,
  RDHUP: 0x2000,
} as const;

/** eventfd(2) flags (<sys/eventfd.h>); Linux only. */
export const EVENTFD = {
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
} as const;

/** kqueue(2) constants shared by macOS and FreeBSD (<sys/event.h>). */
export const KQUEUE = {
  EVFILT_READ: -1,
  EVFILT_WRITE: -2,
  /** EVFILT_USER is -10 on macOS and -11 on FreeBSD. */
  EVFILT_USER_DARWIN: -10,
  EVFILT_USER_FREEBSD: -11,
  EV_ADD: 0x0001,
  EV_DELETE: 0x0002,
  EV_ENABLE: 0x0004,
  EV_DISABLE: 0x0008,
  EV_ONESHOT: 0x0010,
  EV_CLEAR: 0x0020,
  EV_RECEIPT: 0x0040,
  EV_ERROR: 0x4000,
  EV_EOF: 0x8000,
  NOTE_TRIGGER: 0x01000000,
} as const;

/**
 * The constants of a platform, by its `Deno.build.os` name.
 *
 * @param os The operating system, `Deno.build.os` by default.
 * @returns The constant table, or throws for a system this package does not bind.
 */
export function constantsFor(os: string = Deno.build.os): Constants {
  switch (os) {
    case "linux":
      return LINUX;
    case "darwin":
      return DARWIN;
    case "freebsd":
      return FREEBSD;
    default:
      throw new FdwsError("UNSUPPORTED_PLATFORM", `fdws: unsupported operating system "${os}"`);
  }
}

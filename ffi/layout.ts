/**
 * Byte layouts of the C structures this package exchanges with the kernel, per operating
 * system and architecture, with pure encode/decode functions so that every layout can be
 * tested byte by byte on any machine.
 *
 * All supported targets are little-endian 64-bit (x86_64, aarch64).
 *
 * @module
 */

import type { Platform } from "./constants.ts";

/** CPU architectures whose layouts are described here. */
export type Arch = "x86_64" | "aarch64";

/**
 * `struct epoll_event` (<sys/epoll.h>). glibc declares it `__EPOLL_PACKED` on x86_64 only:
 * 12 bytes with `data` at offset 4. Everywhere else natural alignment applies: 16 bytes,
 * `data` at offset 8.
 */
export interface EpollEventLayout {
  readonly size: number;
  readonly eventsOffset: number;
  readonly dataOffset: number;
}

/** The epoll_event layout for a CPU architecture. */
export function epollEventLayout(arch: Arch): EpollEventLayout {
  return arch === "x86_64"
    ? { size: 12, eventsOffset: 0, dataOffset: 4 }
    : { size: 16, eventsOffset: 0, dataOffset: 8 };
}

/**
 * `struct kevent` (<sys/event.h>).
 *
 * macOS: ident (uintptr_t, 0), filter (int16, 8), flags (uint16, 10), fflags (uint32, 12),
 * data (intptr_t, 16), udata (void *, 24): 32 bytes.
 *
 * FreeBSD 12+: the same first 32 bytes (data became int64_t) followed by `ext[4]`
 * (uint64_t), 64 bytes.
 */
export interface KeventLayout {
  readonly size: number;
  readonly ident: number;
  readonly filter: number;
  readonly flags: number;
  readonly fflags: number;
  readonly data: number;
  readonly udata: number;
}

/** The kevent layout of a BSD-family system. */
export function keventLayout(platform: Platform): KeventLayout {
  const base = { ident: 0, filter: 8, flags: 10, fflags: 12, data: 16, udata: 24 };
  return platform === "freebsd" ? { size: 64, ...base } : { size: 32, ...base };
}

/** One change or event of `kevent(2)`, as plain numbers. */
export interface Kevent {
  /** The descriptor (or user identifier for EVFILT_USER). */
  ident: number;
  /** EVFILT_* (negative). */
  filter: number;
  /** EV_* flags. */
  flags: number;
  /** Filter-specific flags (NOTE_*). */
  fflags: number;
  /** Filter-specific data (bytes available, errno on EV_ERROR). */
  data: number;
  /** Opaque user value carried back with the event (we store a token, never a pointer). */
  udata: number;
}

const TWO_32 = 2 ** 32;

/**
 * Writes one `struct kevent` at entry `index` of `view`: the one place that knows how its
 * fields are stored. The entry is zeroed first (the buffers are reused, and stale bytes in
 * FreeBSD's `ext[]` or in `data` must not reach the kernel). Nothing is allocated: the
 * 64-bit fields are written as 32-bit halves, and `udata` is taken as its two halves
 * because a token in its high half can exceed what a JS number holds exactly.
 *
 * @param ident The descriptor (or EVFILT_USER identifier); below 2^53.
 * @param data A signed value below 2^53 in magnitude.
 * @param udataLow Bits 0-31 of `udata`.
 * @param udataHigh Bits 32-63 of `udata`.
 *
 * @example
 * ```ts
 * import { decodeKevent, keventLayout, writeKevent } from "./layout.ts";
 * const layout = keventLayout("darwin");
 * const view = new DataView(new ArrayBuffer(layout.size));
 * writeKevent(view, 0, layout, 7, -1, 0x0001, 0, 0, 7, 3);
 * console.log(decodeKevent(view, 0, layout).udata === 3 * 2 ** 32 + 7); // true
 * ```
 */
export function writeKevent(
  view: DataView,
  index: number,
  layout: KeventLayout,
  ident: number,
  filter: number,
  flags: number,
  fflags: number,
  data: number,
  udataLow: number,
  udataHigh: number,
): void {
  const o = index * layout.size;
  for (let i = 0; i < layout.size; i += 4) view.setUint32(o + i, 0, true);
  view.setUint32(o + layout.ident, ident % TWO_32, true);
  view.setUint32(o + layout.ident + 4, Math.floor(ident / TWO_32), true);
  view.setInt16(o + layout.filter, filter, true);
  view.setUint16(o + layout.flags, flags, true);
  view.setUint32(o + layout.fflags, fflags >>> 0, true);
  // Two's complement from halves: the high half is the floor, the low half what remains.
  const dataHigh = Math.floor(data / TWO_32);
  view.setUint32(o + layout.data, data - dataHigh * TWO_32, true);
  view.setInt32(o + layout.data + 4, dataHigh, true);
  view.setUint32(o + layout.udata, udataLow >>> 0, true);
  view.setUint32(o + layout.udata + 4, udataHigh >>> 0, true);
}

/**
 * Writes `ev` as a `struct kevent` at entry `index` of `view` (through
 * {@link writeKevent}).
 *
 * @example
 * ```ts
 * import { encodeKevent, keventLayout } from "./layout.ts";
 * const layout = keventLayout("darwin");
 * const view = new DataView(new ArrayBuffer(layout.size));
 * encodeKevent(view, 0, layout, { ident: 5, filter: -1, flags: 1, fflags: 0, data: 0, udata: 7 });
 * ```
 */
export function encodeKevent(
  view: DataView,
  index: number,
  layout: KeventLayout,
  ev: Kevent,
): void {
  writeKevent(
    view,
    index,
    layout,
    ev.ident,
    ev.filter,
    ev.flags,
    ev.fflags,
    ev.data,
    ev.udata % TWO_32,
    Math.floor(ev.udata / TWO_32),
  );
}

/**
 * Reads entry `index` of `view` as a `struct kevent`.
 *
 * @example
 * ```ts
 * import { decodeKevent, encodeKevent, keventLayout } from "./layout.ts";
 * const layout = keventLayout("freebsd");
 * const view = new DataView(new ArrayBuffer(layout.size));
 * encodeKevent(view, 0, layout, { ident: 5, filter: -2, flags: 1, fflags: 0, data: 9, udata: 3 });
 * console.log(decodeKevent(view, 0, layout).data); // 9
 * ```
 */
export function decodeKevent(view: DataView, index: number, layout: KeventLayout): Kevent {
  const o = index * layout.size;
  return {
    ident: Number(view.getBigUint64(o + layout.ident, true)),
    filter: view.getInt16(o + layout.filter, true),
    flags: view.getUint16(o + layout.flags, true),
    fflags: view.getUint32(o + layout.fflags, true),
    data: Number(view.getBigInt64(o + layout.data, true)),
    udata: Number(view.getBigUint64(o + layout.udata, true)),
  };
}

/** Size of `struct sockaddr_storage`, big enough for every address family. */
export const SOCKADDR_STORAGE_SIZE = 128;
/** Size of `struct sockaddr_in`. */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `struct sockaddr_in6`. */
export const SOCKADDR_IN6_SIZE = 28;

/** An IP socket address in a form independent of the C layout. */
export interface SocketAddress {
  /** 4 for IPv4, 6 for IPv6. */
  family: 4 | 6;
  /** The address bytes: 4 or 16 of them. */
  address: Uint8Array;
  /** TCP port, host order. */
  port: number;
  /** IPv6 flow information (0 by default). */
  flowinfo?: number;
  /** IPv6 scope (interface index) for link-local addresses. */
  scopeId?: number;
}

/** Address-family numbers and the BSD `sin_len` convention of one platform. */
export interface SockaddrPlatform {
  readonly platform: Platform;
  readonly AF_INET: number;
  readonly AF_INET6: number;
}

/**
 * Encodes a socket address into `buf` (at least 28 bytes) and returns its length.
 *
 * Linux: `sa_family_t` is a 16-bit host-order field at offset 0. BSDs (<netinet/in.h>):
 * a `uint8_t sin_len` at offset 0 and an 8-bit family at offset 1. The port is big-endian
 * at offset 2 everywhere; IPv4 address at 4; IPv6 flowinfo at 4, address at 8, scope at 24.
 *
 * @example
 * ```ts
 * import { encodeSockaddr } from "./layout.ts";
 * const buf = new Uint8Array(128);
 * const len = encodeSockaddr(buf, { platform: "linux", AF_INET: 2, AF_INET6: 10 }, {
 *   family: 4,
 *   address: new Uint8Array([127, 0, 0, 1]),
 *   port: 8080,
 * });
 * console.log(len); // 16
 * ```
 */
export function encodeSockaddr(
  buf: Uint8Array,
  p: SockaddrPlatform,
  addr: SocketAddress,
): number {
  const size = addr.family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
  buf.fill(0, 0, size);
  const view = new DataView(buf.buffer, buf.byteOffset, size);
  const af = addr.family === 4 ? p.AF_INET : p.AF_INET6;
  if (p.platform === "linux") {
    view.setUint16(0, af, true);
  } else {
    view.setUint8(0, size);
    view.setUint8(1, af);
  }
  view.setUint16(2, addr.port, false);
  if (addr.family === 4) {
    buf.set(addr.address.subarray(0, 4), 4);
  } else {
    view.setUint32(4, addr.flowinfo ?? 0, false);
    buf.set(addr.address.subarray(0, 16), 8);
    view.setUint32(24, addr.scopeId ?? 0, true);
  }
  return size;
}

/**
 * Decodes a socket address written by the kernel (accept, getsockname, getpeername).
 *
 * @returns The address, or null for a family other than IPv4/IPv6 (e.g. AF_UNIX).
 *
 * @example
 * ```ts
 * import { decodeSockaddr, encodeSockaddr } from "./layout.ts";
 * const p = { platform: "darwin", AF_INET: 2, AF_INET6: 30 } as const;
 * const buf = new Uint8Array(128);
 * encodeSockaddr(buf, p, { family: 4, address: new Uint8Array([10, 0, 0, 1]), port: 80 });
 * console.log(decodeSockaddr(buf, p)?.port); // 80
 * ```
 */
export function decodeSockaddr(buf: Uint8Array, p: SockaddrPlatform): SocketAddress | null {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const af = p.platform === "linux" ? view.getUint16(0, true) : view.getUint8(1);
  const port = view.getUint16(2, false);
  if (af === p.AF_INET) {
    return { family: 4, address: buf.slice(4, 8), port };
  }
  if (af === p.AF_INET6) {
    return {
      family: 6,
      address: buf.slice(8, 24),
      port,
      flowinfo: view.getUint32(4, false),
      scopeId: view.getUint32(24, true),
    };
  }
  return null;
}

/**
 * `struct timeval` (<sys/time.h>): `tv_sec` is a 64-bit `time_t` at 0 and `tv_usec` sits at
 * 8 on every supported target (a `long` on Linux and FreeBSD, a 32-bit `suseconds_t` padded
 * to 16 bytes on macOS). Writing it as two 64-bit fields would clobber nothing on macOS
 * either, but we write 32 bits so the layout stays exact.
 */
export const TIMEVAL_SIZE = 16;

/** Writes a timeout in milliseconds as a `struct timeval` at offset 0 of `view`. */
export function encodeTimeval(view: DataView, ms: number): void {
  const sec = Math.floor(ms / 1000);
  const usec = Math.floor((ms - sec * 1000) * 1000);
  view.setBigInt64(0, BigInt(sec), true);
  view.setBigInt64(8, 0n, true);
  view.setInt32(8, usec, true);
}

/** `struct timespec` (<time.h>): two 64-bit fields, seconds and nanoseconds, 16 bytes. */
export const TIMESPEC_SIZE = 16;

/** Writes a timeout in milliseconds as a `struct timespec` at offset 0 of `view`. */
export function encodeTimespec(view: DataView, ms: number): void {
  const sec = Math.floor(ms / 1000);
  const nsec = Math.floor((ms - sec * 1000) * 1_000_000);
  view.setBigInt64(0, BigInt(sec), true);
  view.setBigInt64(8, BigInt(nsec), true);
}

/**
 * `fd_set` (<sys/select.h>): FD_SETSIZE bits in an array of `long` (Linux, FreeBSD) or
 * `int32_t` (macOS). On a little-endian machine both are the same bytes: descriptor `fd`
 * is bit `fd % 8` of byte `fd >> 3`, which is how these helpers address it.
 */
export function fdSetBytes(fdSetSize: number): number {
  return fdSetSize >> 3;
}

/** Sets the bit of `fd` in an `fd_set`. */
export function fdSet(set: Uint8Array, fd: number): void {
  set[fd >> 3] |= 1 << (fd & 7);
}

/** Clears the bit of `fd` in an `fd_set`. */
export function fdClr(set: Uint8Array, fd: number): void {
  set[fd >> 3] &= ~(1 << (fd & 7));
}

/** Tells whether the bit of `fd` is set in an `fd_set`. */
export function fdIsSet(set: Uint8Array, fd: number): boolean {
  return (set[fd >> 3] & (1 << (fd & 7))) !== 0;
}

/**
 * `struct addrinfo` (<netdb.h>) field offsets on 64-bit targets. glibc and musl put
 * `ai_addr` before `ai_canonname`; the BSDs (macOS, FreeBSD) put `ai_canonname` first.
 */
export interface AddrinfoLayout {
  readonly size: number;
  readonly flags: number;
  readonly family: number;
  readonly socktype: number;
  readonly protocol: number;
  readonly addrlen: number;
  readonly addr: number;
  readonly canonname: number;
  readonly next: number;
}

/** The addrinfo layout of a platform. */
export function addrinfoLayout(platform: Platform): AddrinfoLayout {
  const head = { size: 48, flags: 0, family: 4, socktype: 8, protocol: 12, addrlen: 16 };
  return platform === "linux"
    ? { ...head, addr: 24, canonname: 32, next: 40 }
    : { ...head, canonname: 24, addr: 32, next: 40 };
}

/** `struct iovec` (<sys/uio.h>): base pointer at 0, length at 8; 16 bytes. */
export const IOVEC_SIZE = 16;

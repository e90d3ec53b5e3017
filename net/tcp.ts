/**
 * Non-blocking TCP sockets on raw descriptors: listen, accept, connect, and the socket
 * options a WebSocket server needs.
 *
 * @module
 */

import type { Constants } from "../ffi/constants.ts";
import { setNonBlockingCloseOnExec } from "../ffi/descriptor.ts";
import { errno, fail, SyscallError } from "../ffi/errno.ts";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_STORAGE_SIZE } from "../ffi/layout.ts";
import { type Libc, libc } from "../ffi/libc.ts";
import { AddressError, formatIp, parseIp } from "./address.ts";

/** The address of one end of a TCP connection, shaped like `Deno.NetAddr`. */
export interface NetAddr {
  /** Always `"tcp"`. */
  transport: "tcp";
  /** IP address as text (`"127.0.0.1"`, `"::1"`). */
  hostname: string;
  /** Port number. */
  port: number;
}

/** Options of {@link listenTcp}. */
export interface ListenOptions {
  /** IP literal to bind (`"0.0.0.0"`, `"::"`, `"127.0.0.1"`, `"::1"`) or `"localhost"`. Default `"0.0.0.0"`. */
  hostname?: string;
  /** Port; 0 picks a free one (read it back from `address.port`). Default 0. */
  port?: number;
  /** listen(2) backlog. Default 511. */
  backlog?: number;
  /** SO_REUSEPORT: several processes may bind the same port (kernel load-balances). Default false. */
  reusePort?: boolean;
  /** IPV6_V6ONLY for IPv6 addresses; with false, `"::"` also accepts IPv4. Default false. */
  ipv6Only?: boolean;
}

const sockaddrBuf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
const socklenBuf = new Uint32Array(1);
const intOpt = new Int32Array(1);

/** Sets an integer socket option; returns 0 or the errno. */
function trySetIntOption(
  lib: Libc,
  fd: number,
  level: number,
  name: number,
  value: number,
): number {
  intOpt[0] = value;
  return lib.sym.setsockopt(fd, level, name, intOpt, 4) < 0 ? errno() : 0;
}

/** The C function whose failure {@link prepareSocket} reported last. */
let prepareFailedIn = "";

/**
 * Readies a socket the kernel just created or accepted: non-blocking and close-on-exec
 * when the creating call could not be told so (`flagsGiven` false: macOS), and
 * SO_NOSIGPIPE where the system has it instead of MSG_NOSIGNAL. TCP_NODELAY is not set
 * here: it is a preference, and each caller sets it best effort.
 *
 * @returns 0, or the errno of the step that failed (named in `prepareFailedIn`). The
 *   descriptor stays open either way: the caller closes it.
 */
function prepareSocket(lib: Libc, fd: number, flagsGiven: boolean): number {
  const c = lib.c;
  if (!flagsGiven) {
    const e = setNonBlockingCloseOnExec(lib, fd);
    if (e !== 0) {
      prepareFailedIn = "fcntl";
      return e;
    }
  }
  if (c.SO_NOSIGPIPE !== 0) {
    const e = trySetIntOption(lib, fd, c.SOL_SOCKET, c.SO_NOSIGPIPE, 1);
    if (e !== 0) {
      prepareFailedIn = "setsockopt";
      return e;
    }
  }
  return 0;
}

/** Creates a non-blocking, close-on-exec TCP socket of the given family. */
function tcpSocket(lib: Libc, family: 4 | 6): number {
  const c = lib.c;
  const af = family === 4 ? c.AF_INET : c.AF_INET6;
  const fd = lib.sym.socket(af, c.SOCK_STREAM | c.SOCK_NONBLOCK | c.SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  const e = prepareSocket(lib, fd, c.SOCK_NONBLOCK !== 0);
  if (e !== 0) {
    lib.sym.close(fd);
    throw new SyscallError(prepareFailedIn, e, "preparing a new socket");
  }
  return fd;
}

/** Sets an int socket option; throws a `SyscallError` when the system refuses it. */
export function setIntOption(fd: number, level: number, name: number, value: number): void {
  intOpt[0] = value;
  if (libc().sym.setsockopt(fd, level, name, intOpt, 4) < 0) fail("setsockopt");
}

/** Reads an integer socket option. */
export function getIntOption(fd: number, level: number, name: number): number {
  socklenBuf[0] = 4;
  if (libc().sym.getsockopt(fd, level, name, intOpt, socklenBuf) < 0) fail("getsockopt");
  return intOpt[0];
}

/** Closes a descriptor. EINTR is not retried: on Linux the descriptor is gone either way. */
export function closeFd(fd: number): void {
  libc().sym.close(fd);
}

function toAddr(lib: Libc, buf: Uint8Array): NetAddr {
  const a = decodeSockaddr(buf, lib.c);
  if (a === null) return { transport: "tcp", hostname: "", port: 0 };
  return { transport: "tcp", hostname: formatIp(a.address), port: a.port };
}

/** The local address a socket is bound to (getsockname). */
export function localAddress(fd: number): NetAddr {
  const lib = libc();
  socklenBuf[0] = SOCKADDR_STORAGE_SIZE;
  if (lib.sym.getsockname(fd, sockaddrBuf, socklenBuf) < 0) fail("getsockname");
  return toAddr(lib, sockaddrBuf);
}

function resolveLiteral(hostname: string): { family: 4 | 6; bytes: Uint8Array; scopeId: number } {
  const ip = parseIp(hostname);
  if (ip === null) {
    throw new AddressError(
      `"${hostname}" is not an IP address literal; pass an IP (resolve names first)`,
    );
  }
  return ip;
}

/**
 * A listening TCP socket. `accept()` never blocks: it returns -1 when no connection is
 * waiting. When the process runs out of descriptors (EMFILE/ENFILE), a spare descriptor
 * kept for the purpose is released to accept and close the waiting connection, so the
 * backlog drains and a level-triggered poller does not spin at 100% CPU on it.
 *
 * @example
 * ```ts
 * import { listenTcp } from "./tcp.ts";
 * const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
 * console.log(listener.address.port);
 * listener.close();
 * ```
 */
export class TcpListener {
  /** The listening descriptor. */
  readonly fd: number;
  /** The bound address (with the chosen port when 0 was asked). */
  readonly address: NetAddr;
  /** Connections closed unanswered because the process had no descriptor left. */
  droppedAtLimit = 0;
  /**
   * Connections closed because the peer had reset them before they could be prepared
   * (macOS refuses SO_NOSIGPIPE on such a socket with EINVAL).
   */
  droppedReset = 0;
  /** Address of the peer of the last accepted connection. */
  readonly peer: NetAddr = { transport: "tcp", hostname: "", port: 0 };
  readonly #lib: Libc;
  readonly #peerBuf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
  readonly #peerLen = new Uint32Array(1);
  #spareFd: number;
  #closed = false;

  /** @internal Use {@link listenTcp}. */
  constructor(lib: Libc, fd: number) {
    this.#lib = lib;
    this.fd = fd;
    this.address = localAddress(fd);
    this.#spareFd = openSpare(lib);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Accepts one waiting connection: returns its non-blocking descriptor (TCP_NODELAY set)
   * and records its address in {@link TcpListener.peer}, or -1 when none is waiting.
   * Connections that die before they are ready are closed and skipped
   * ({@link TcpListener.droppedReset}). Throws a {@link SyscallError} for failures that
   * need the caller to back off (EMFILE when no spare descriptor could be used, ENOBUFS,
   * ENOMEM); no accepted descriptor is left open when it throws.
   */
  accept(): number {
    const lib = this.#lib;
    const c = lib.c;
    const E = c.errno;
    // Lost when another thread took its number while it was lent out: take one back
    // before the table fills up again.
    if (this.#spareFd < 0) this.#spareFd = openSpare(lib);
    for (;;) {
      this.#peerLen[0] = SOCKADDR_STORAGE_SIZE;
      const fd = lib.accept4 !== null
        ? lib.accept4(this.fd, this.#peerBuf, this.#peerLen, c.SOCK_NONBLOCK | c.SOCK_CLOEXEC)
        : lib.sym.accept(this.fd, this.#peerBuf, this.#peerLen);
      if (fd >= 0) {
        const failed = prepareSocket(lib, fd, lib.accept4 !== null);
        if (failed !== 0) {
          lib.sym.close(fd);
          // The peer reset the connection between the kernel's accept and ours: macOS
          // then refuses socket options with EINVAL (ECONNRESET would say the same). It
          // concerns that connection alone, and the listener goes on: this is not the
          // descriptor exhaustion that a thrown error makes the caller back off from.
          if (failed === E.EINVAL || failed === E.ECONNRESET) {
            this.droppedReset++;
            continue;
          }
          throw new SyscallError(prepareFailedIn, failed, "preparing an accepted socket");
        }
        // Best effort: without it the connection works, its small frames may just wait.
        trySetIntOption(lib, fd, c.IPPROTO_TCP, c.TCP_NODELAY, 1);
        const b = this.#peerBuf;
        const family = c.platform === "linux" ? b[0] | (b[1] << 8) : b[1];
        if (family === c.AF_INET) {
          // The common case decoded in place: a DataView, an object and a copy of the
          // address per accept are garbage that a burst of connections pays for.
          this.peer.hostname = ipv4Text(b[4], b[5], b[6], b[7]);
          this.peer.port = (b[2] << 8) | b[3];
          return fd;
        }
        const a = decodeSockaddr(b, c);
        if (a !== null) {
          this.peer.hostname = hostText(a.address);
          this.peer.port = a.port;
        }
        return fd;
      }
      const e = errno();
      if (e === E.EAGAIN) return -1;
      // The connection died in the backlog, or a signal interrupted us: try the next one.
      if (e === E.EINTR || e === E.ECONNABORTED || e === E.EPROTO) continue;
      if ((e === E.EMFILE || e === E.ENFILE) && this.#spareFd >= 0) {
        lib.sym.close(this.#spareFd);
        this.#peerLen[0] = SOCKADDR_STORAGE_SIZE;
        const victim = lib.sym.accept(this.fd, this.#peerBuf, this.#peerLen);
        if (victim >= 0) {
          lib.sym.close(victim);
          this.droppedAtLimit++;
        }
        this.#spareFd = openSpare(lib);
        if (victim >= 0) continue;
        return -1;
      }
      throw new SyscallError("accept", e);
    }
  }

  /** Closes the listening socket (and its spare descriptor). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.sym.close(this.fd);
    if (this.#spareFd >= 0) this.#lib.sym.close(this.#spareFd);
    this.#spareFd = -1;
  }
}

const devNull = new TextEncoder().encode("/dev/null\0");

/**
 * Peer addresses as text, shared between connections from the same IPv4 address: a
 * connection keeps its peer's address for its whole life, and thousands of them often
 * come from a few addresses (proxies, load balancers, NAT).
 */
const hostCache = new Map<number, string>();
const HOST_CACHE_LIMIT = 4096;

function hostText(address: Uint8Array): string {
  if (address.length !== 4) return formatIp(address);
  return ipv4Text(address[0], address[1], address[2], address[3]);
}

function ipv4Text(a: number, b: number, c: number, d: number): string {
  const key = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  let text = hostCache.get(key);
  if (text === undefined) {
    text = formatIp(Uint8Array.of(a, b, c, d));
    if (hostCache.size >= HOST_CACHE_LIMIT) hostCache.clear();
    hostCache.set(key, text);
  }
  return text;
}

function openSpare(lib: Libc): number {
  return lib.sym.open(devNull, lib.c.O_RDONLY | lib.c.O_CLOEXEC);
}

/**
 * Binds and listens on a TCP address, non-blocking, with SO_REUSEADDR.
 *
 * @param options Address, port and socket options.
 * @param lib The C library binding; tests pass one whose calls fail on demand.
 * @returns The listener; no descriptor is left open when it throws.
 *
 * @example
 * ```ts
 * import { listenTcp } from "./tcp.ts";
 * const listener = listenTcp({ hostname: "::1", port: 0, backlog: 1024 });
 * console.log(listener.address);
 * listener.close();
 * ```
 */
export function listenTcp(options: ListenOptions = {}, lib: Libc = libc()): TcpListener {
  const c: Constants = lib.c;
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AddressError(`invalid port ${port}`);
  }
  const ip = resolveLiteral(hostname);
  const fd = tcpSocket(lib, ip.family);
  try {
    let e = trySetIntOption(lib, fd, c.SOL_SOCKET, c.SO_REUSEADDR, 1);
    if (e === 0 && options.reusePort) {
      e = trySetIntOption(lib, fd, c.SOL_SOCKET, c.SO_REUSEPORT, 1);
    }
    if (e === 0 && ip.family === 6) {
      e = trySetIntOption(lib, fd, c.IPPROTO_IPV6, c.IPV6_V6ONLY, options.ipv6Only ? 1 : 0);
    }
    if (e !== 0) throw new SyscallError("setsockopt", e);
    const len = encodeSockaddr(sockaddrBuf, c, {
      family: ip.family,
      address: ip.bytes,
      port,
      scopeId: ip.scopeId,
    });
    if (lib.sym.bind(fd, sockaddrBuf, len) < 0) fail("bind", `${hostname}:${port}`);
    if (lib.sym.listen(fd, options.backlog ?? 511) < 0) fail("listen");
    return new TcpListener(lib, fd);
  } catch (err) {
    lib.sym.close(fd);
    throw err;
  }
}

/** A connection being opened by {@link connectTcp}. */
export interface PendingConnect {
  /** The socket's descriptor (non-blocking). */
  fd: number;
  /** True when the connection is still being established: wait for writability, then call {@link finishConnect}. */
  inProgress: boolean;
}

/**
 * Starts a non-blocking TCP connection to an IP literal.
 *
 * @param hostname An IPv4 or IPv6 literal.
 * @param port The port.
 * @param lib The C library binding; tests pass one whose calls fail on demand.
 * @returns The socket and whether the connection is still in progress; no descriptor is
 *   left open when it throws.
 *
 * @example
 * ```ts
 * import { connectTcp, finishConnect } from "./tcp.ts";
 * const { fd, inProgress } = connectTcp("127.0.0.1", 8080);
 * // when inProgress: wait until fd is writable, then:
 * finishConnect(fd); // throws a SyscallError such as ECONNREFUSED
 * ```
 */
export function connectTcp(hostname: string, port: number, lib: Libc = libc()): PendingConnect {
  const c = lib.c;
  const ip = resolveLiteral(hostname);
  const fd = tcpSocket(lib, ip.family);
  const len = encodeSockaddr(sockaddrBuf, c, {
    family: ip.family,
    address: ip.bytes,
    port,
    scopeId: ip.scopeId,
  });
  // Best effort, as for accepted connections.
  trySetIntOption(lib, fd, c.IPPROTO_TCP, c.TCP_NODELAY, 1);
  if (lib.sym.connect(fd, sockaddrBuf, len) === 0) return { fd, inProgress: false };
  const e = errno();
  if (e === c.errno.EINPROGRESS || e === c.errno.EINTR || e === c.errno.EAGAIN) {
    return { fd, inProgress: true };
  }
  lib.sym.close(fd);
  throw new SyscallError("connect", e, `${hostname}:${port}`);
}

/**
 * Completes a non-blocking connect once the poller reported the socket: throws its error,
 * if any. A report can come before the outcome is known (a spurious wake-up, a poller that
 * reports every registered descriptor): then SO_ERROR is 0 but the socket has no peer yet,
 * and this returns false, so the caller waits instead of writing to a socket that may still
 * fail (and hide that failure from the next address to try).
 *
 * @returns true when connected, false while still in progress.
 */
export function finishConnect(fd: number): boolean {
  const lib = libc();
  const c = lib.c;
  const err = getIntOption(fd, c.SOL_SOCKET, c.SO_ERROR);
  if (err !== 0) throw new SyscallError("connect", err);
  socklenBuf[0] = SOCKADDR_STORAGE_SIZE;
  if (lib.sym.getpeername(fd, sockaddrBuf, socklenBuf) === 0) return true;
  const e = errno();
  if (e === c.errno.ENOTCONN) return false;
  throw new SyscallError("getpeername", e);
}

/** Shuts down one or both directions of a connection (SHUT_WR sends FIN). Errors are ignored. */
export function shutdownFd(fd: number, how: "read" | "write" | "both"): void {
  const c = libc().c;
  libc().sym.shutdown(fd, how === "read" ? c.SHUT_RD : how === "write" ? c.SHUT_WR : c.SHUT_RDWR);
}

/**
 * A port held without listening: a TCP socket bound with SO_REUSEPORT that never calls
 * listen(2), so that the kernel gives it no connection (Linux puts only listening sockets
 * in a port's reuse group) while nobody else can take the port. The main thread holds it
 * when `serve({ workers, port: 0 })` picks a free port for the workers, until they listen.
 *
 * @module
 */

import { setCloseOnExec } from "../../ffi/descriptor.ts";
import { fail, SyscallError } from "../../ffi/errno.ts";
import { encodeSockaddr, SOCKADDR_STORAGE_SIZE } from "../../ffi/layout.ts";
import { libc } from "../../ffi/libc.ts";
import { AddressError, parseIp } from "../../net/address.ts";
import { closeFd, localAddress, type NetAddr, setIntOption } from "../../net/tcp.ts";

/**
 * A reserved port.
 *
 * @example
 * ```ts
 * import { reservePort } from "./reservation.ts";
 * const reservation = reservePort("127.0.0.1", 0, false);
 * console.log(reservation.address.port > 0); // true
 * reservation.close();
 * ```
 */
export interface Reservation {
  /** The bound address, with the port chosen. */
  readonly address: NetAddr;
  /** Releases the port (the workers' listeners keep it). Idempotent. */
  close(): void;
}

/**
 * Binds `hostname:port` with SO_REUSEADDR and SO_REUSEPORT, without listening.
 *
 * @throws {SyscallError} `EADDRINUSE` when a socket without SO_REUSEPORT holds the port.
 * @throws {AddressError} for a hostname that is not an IP literal.
 */
export function reservePort(hostname: string, port: number, ipv6Only: boolean): Reservation {
  const lib = libc();
  const c = lib.c;
  const ip = parseIp(hostname);
  if (ip === null) throw new AddressError(`"${hostname}" is not an IP address literal`);
  const fd = lib.sym.socket(ip.family === 4 ? c.AF_INET : c.AF_INET6, c.SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  try {
    const e = setCloseOnExec(lib, fd);
    if (e !== 0) throw new SyscallError("fcntl", e);
    setIntOption(fd, c.SOL_SOCKET, c.SO_REUSEADDR, 1);
    setIntOption(fd, c.SOL_SOCKET, c.SO_REUSEPORT, 1);
    if (ip.family === 6) setIntOption(fd, c.IPPROTO_IPV6, c.IPV6_V6ONLY, ipv6Only ? 1 : 0);
    const buf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
    const len = encodeSockaddr(buf, c, {
      family: ip.family,
      address: ip.bytes,
      port,
      scopeId: ip.scopeId,
    });
    if (lib.sym.bind(fd, buf, len) < 0) fail("bind", `${hostname}:${port}`);
    const address = localAddress(fd);
    let open = true;
    return {
      address,
      close(): void {
        if (!open) return;
        open = false;
        closeFd(fd);
      },
    };
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

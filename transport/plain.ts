/**
 * Plain TCP: the bytes go to the kernel as they are. One stateless instance serves every
 * connection, so a connection without TLS pays nothing for the seam but one monomorphic
 * method call.
 *
 * @module
 */

import { lastIoError, recvInto, sendFrom, sendFromAddress } from "../net/io.ts";
import { closeFd, shutdownFd } from "../net/tcp.ts";
import { HANDSHAKE_DONE, type HandshakeStep, type Transport } from "./transport.ts";

/**
 * The TCP transport; use the shared {@link plainTransport}.
 *
 * @example
 * ```ts
 * import { plainTransport } from "./plain.ts";
 * console.log(plainTransport.kind); // "tcp"
 * ```
 */
export class PlainTransport implements Transport {
  /** Always `"tcp"`. */
  readonly kind = "tcp" as const;
  /** TCP holds no received bytes of its own. */
  readonly pending = false;
  /** TCP needs no readiness of its own. */
  readonly wants = 0;

  /** TCP has no handshake of its own. */
  handshake(_fd: number): HandshakeStep {
    return HANDSHAKE_DONE;
  }

  /** recv(2) into `buf`. */
  read(fd: number, buf: Uint8Array, length: bigint): number {
    return recvInto(fd, buf, length);
  }

  /** send(2) from `buf`. */
  write(fd: number, buf: Uint8Array, length: number): number {
    return sendFrom(fd, buf, length);
  }

  /** send(2) from an address. */
  writeAddress(fd: number, address: number, length: number): number {
    return sendFromAddress(fd, address, length);
  }

  /** errno of the last failed call of this thread. */
  get lastError(): number {
    return lastIoError();
  }

  /** Empty: the errno says it all. */
  get lastErrorMessage(): string {
    return "";
  }

  /** Sends FIN. */
  shutdownWrite(fd: number): void {
    shutdownFd(fd, "write");
  }

  /** close(2). */
  close(fd: number): void {
    closeFd(fd);
  }
}

/** The one plain transport. */
export const plainTransport: PlainTransport = new PlainTransport();

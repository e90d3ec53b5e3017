/**
 * Why `connect()` failed, and the translation of every lower-level failure into it.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import { SyscallError } from "../ffi/errno.ts";
import { AddressError } from "../net/address.ts";
import { ResolveError } from "../net/resolve.ts";

/**
 * Why `connect()` failed. `code` tells the kind of failure:
 *
 * - `"INVALID_URL"`, `"INVALID_OPTION"`: the arguments; a `TlsError` code (`"CA_UNREADABLE"`,
 *   `"TLS_UNAVAILABLE"`, ...) for TLS settings that cannot be used;
 * - `"ENOTFOUND"`, `"EAI_AGAIN"`, ...: name resolution (`cause` is the `ResolveError`);
 * - `"ECONNREFUSED"`, `"ENETUNREACH"`, `"ECONNRESET"`, ...: the system call that failed
 *   (`cause` is the `SyscallError`);
 * - `"ETIMEDOUT"`: the `timeout` passed; `"ABORTED"`: the `signal` fired (`cause` is its reason);
 * - `"UNEXPECTED_RESPONSE"`: the server answered with another status than 101 (see
 *   `status`); `"HANDSHAKE_FAILED"`: an invalid answer (wrong `Sec-WebSocket-Accept`, a
 *   subprotocol that was not offered, an extension, malformed HTTP, the connection
 *   closed before the answer, or a TLS handshake that failed: an untrusted certificate,
 *   a name that does not match, an alert);
 * - `"MANAGER_STOPPED"`: the manager stopped while connecting.
 *
 * No descriptor is left open when the promise rejects.
 *
 * @example
 * ```ts
 * import { ConnectError } from "./errors.ts";
 *
 * const err = new ConnectError("ECONNREFUSED", "nobody there", { url: "ws://127.0.0.1:1/" });
 * if (err.code === "ECONNREFUSED") console.log("nobody there");
 * ```
 */
export class ConnectError extends FdwsError {
  /** The URL being connected to. */
  readonly url: string;
  /** HTTP status of the server's answer, or 0 when none was read. */
  readonly status: number;
  /** The address being tried when the failure happened, or `""`. */
  readonly address: string;

  /**
   * Creates the error; `connect()` does this.
   *
   * @param code Stable identifier (see the class description).
   * @param message Human-readable description.
   * @param init URL, status, address and cause.
   */
  constructor(
    code: string,
    message: string,
    init: { url?: string; status?: number; address?: string; cause?: unknown } = {},
  ) {
    super(code, message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ConnectError";
    this.url = init.url ?? "";
    this.status = init.status ?? 0;
    this.address = init.address ?? "";
  }
}

/** The {@link ConnectError} for any failure while connecting to `url` (at `address`). */
export function toConnectError(err: unknown, url: string, address: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof SyscallError) {
    return new ConnectError(err.code, `${err.syscall} ${err.code} ${address} (${url})`, {
      url,
      address,
      cause: err,
    });
  }
  if (err instanceof ResolveError) {
    return new ConnectError(err.code, `${err.message} (${url})`, { url, cause: err });
  }
  if (err instanceof AddressError) {
    return new ConnectError("INVALID_URL", `${err.message} (${url})`, { url, address, cause: err });
  }
  if (err instanceof FdwsError) {
    return new ConnectError(err.code, `${err.message} (${url})`, { url, address, cause: err });
  }
  return new ConnectError("CONNECT_FAILED", `${String(err)} (${url})`, {
    url,
    address,
    cause: err,
  });
}

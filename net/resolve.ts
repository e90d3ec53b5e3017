/**
 * Host name resolution for the client: IP literals and `localhost` are answered at once,
 * other names by the system resolver (libc `getaddrinfo`, so `/etc/hosts`, nsswitch and
 * DNS apply exactly as for any other program), run on a worker thread so that the event
 * loop keeps running while it waits.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";
import type { Platform } from "../ffi/constants.ts";
import { addrinfoLayout, decodeSockaddr, SOCKADDR_STORAGE_SIZE } from "../ffi/layout.ts";
import { libc } from "../ffi/libc.ts";
import { formatIp, parseIp } from "./address.ts";

/**
 * One address a host name resolved to.
 *
 * @example
 * ```ts
 * import type { ResolvedAddress } from "./resolve.ts";
 * const a: ResolvedAddress = { family: 6, address: "::1" };
 * console.log(a.family === 6 ? `[${a.address}]` : a.address); // "[::1]"
 * ```
 */
export interface ResolvedAddress {
  /** 4 for IPv4, 6 for IPv6. */
  family: 4 | 6;
  /** The address as text (`"127.0.0.1"`, `"::1"`, `"fe80::1%2"` with a numeric zone). */
  address: string;
}

/**
 * A host name could not be resolved. `code` is `"ENOTFOUND"` (the name does not exist or
 * has no address), `"EAI_AGAIN"` (temporary failure, e.g. no DNS server answered),
 * `"EAI_FAIL"` (permanent resolver failure), `"INVALID_HOSTNAME"` (empty, or containing a
 * NUL) or `"EAI_<NAME>"` for the other `getaddrinfo` errors.
 *
 * @example
 * ```ts
 * import { ResolveError, resolveHost } from "./resolve.ts";
 *
 * try {
 *   await resolveHost("nonexistent.invalid");
 * } catch (err) {
 *   if (err instanceof ResolveError) console.log(err.code, err.hostname); // ENOTFOUND nonexistent.invalid
 * }
 * ```
 */
export class ResolveError extends FdwsError {
  /** The name that failed to resolve. */
  readonly hostname: string;
  /** The raw `getaddrinfo` result (an `EAI_*` value of this system), or 0. */
  readonly eai: number;

  /**
   * Creates the error; {@link resolveHost} does this.
   *
   * @param code Stable identifier (`"ENOTFOUND"`, `"EAI_AGAIN"`, ...).
   * @param hostname The name that failed.
   * @param eai The raw `getaddrinfo` result, or 0.
   */
  constructor(code: string, hostname: string, eai = 0) {
    super(code, `cannot resolve ${JSON.stringify(hostname)}: ${describe(code)}`);
    this.name = "ResolveError";
    this.hostname = hostname;
    this.eai = eai;
  }
}

function describe(code: string): string {
  switch (code) {
    case "ENOTFOUND":
      return "no such host (ENOTFOUND)";
    case "EAI_AGAIN":
      return "temporary failure in name resolution (EAI_AGAIN)";
    case "EAI_FAIL":
      return "non-recoverable failure in name resolution (EAI_FAIL)";
    case "INVALID_HOSTNAME":
      return "not a valid host name";
    default:
      return `getaddrinfo failed (${code})`;
  }
}

/** `EAI_*` values of <netdb.h>: glibc and musl use negative numbers, the BSDs positive. */
const EAI_NAMES: Record<"linux" | "bsd", Record<number, string>> = {
  linux: {
    [-1]: "EAI_BADFLAGS",
    [-2]: "EAI_NONAME",
    [-3]: "EAI_AGAIN",
    [-4]: "EAI_FAIL",
    [-5]: "EAI_NODATA",
    [-6]: "EAI_FAMILY",
    [-7]: "EAI_SOCKTYPE",
    [-8]: "EAI_SERVICE",
    [-9]: "EAI_ADDRFAMILY",
    [-10]: "EAI_MEMORY",
    [-11]: "EAI_SYSTEM",
    [-12]: "EAI_OVERFLOW",
  },
  bsd: {
    1: "EAI_ADDRFAMILY",
    2: "EAI_AGAIN",
    3: "EAI_BADFLAGS",
    4: "EAI_FAIL",
    5: "EAI_FAMILY",
    6: "EAI_MEMORY",
    7: "EAI_NODATA",
    8: "EAI_NONAME",
    9: "EAI_SERVICE",
    10: "EAI_SOCKTYPE",
    11: "EAI_SYSTEM",
    12: "EAI_BADHINTS",
    13: "EAI_PROTOCOL",
    14: "EAI_OVERFLOW",
  },
};

/**
 * The error code for a non-zero `getaddrinfo` result on `platform`: the "no such name"
 * family (`EAI_NONAME`, `EAI_NODATA`, `EAI_ADDRFAMILY`) becomes `"ENOTFOUND"`, as in
 * Node.js; the others keep their `EAI_*` name (`"EAI_AGAIN"`), unknown values `"EAI_<n>"`.
 *
 * @example
 * ```ts
 * import { eaiCode } from "./resolve.ts";
 * console.log(eaiCode(-2, "linux")); // "ENOTFOUND"
 * console.log(eaiCode(2, "darwin")); // "EAI_AGAIN"
 * ```
 */
export function eaiCode(result: number, platform: Platform): string {
  const table = EAI_NAMES[platform === "linux" ? "linux" : "bsd"];
  const name = table[result];
  if (name === undefined) return `EAI_${result}`;
  if (name === "EAI_NONAME" || name === "EAI_NODATA" || name === "EAI_ADDRFAMILY") {
    return "ENOTFOUND";
  }
  return name;
}

/**
 * Answers IP literals (brackets allowed around IPv6) and `localhost` without the resolver;
 * returns null for any other name.
 *
 * @example
 * ```ts
 * import { resolveLiteral } from "./resolve.ts";
 * console.log(resolveLiteral("[::1]")); // [{ family: 6, address: "::1" }]
 * console.log(resolveLiteral("example.com")); // null
 * ```
 */
export function resolveLiteral(hostname: string): ResolvedAddress[] | null {
  const lower = hostname.toLowerCase();
  if (lower === "localhost" || lower === "localhost.") {
    // RFC 6761 §6.3: localhost is the loopback, whatever a resolver would say.
    return [{ family: 4, address: "127.0.0.1" }, { family: 6, address: "::1" }];
  }
  const ip = parseIp(hostname);
  if (ip === null) return null;
  const text = formatIp(ip.bytes);
  return [{ family: ip.family, address: ip.scopeId !== 0 ? `${text}%${ip.scopeId}` : text }];
}

const ADDRINFO_SIZE = 48;
const encoder = new TextEncoder();

/**
 * Resolves a host name to its addresses, in the order the system prefers them (RFC 6724
 * as applied by `getaddrinfo`), without duplicates.
 *
 * IP literals (brackets allowed around IPv6) and `localhost` (127.0.0.1 then ::1) are
 * answered without the resolver. Any other name goes to libc `getaddrinfo` (AF_UNSPEC,
 * SOCK_STREAM) on a worker thread, so `/etc/hosts` and DNS apply as for any program.
 * Needs `--allow-ffi`.
 *
 * @example
 * ```ts
 * import { resolveHost } from "./resolve.ts";
 *
 * console.log(await resolveHost("localhost"));
 * // [{ family: 4, address: "127.0.0.1" }, { family: 6, address: "::1" }]
 * ```
 *
 * @param hostname A host name or IP literal.
 * @returns At least one address.
 * @throws {ResolveError} `ENOTFOUND`, `EAI_AGAIN`, `EAI_FAIL`, `INVALID_HOSTNAME`, ...
 */
export async function resolveHost(hostname: string): Promise<ResolvedAddress[]> {
  const literal = resolveLiteral(hostname);
  if (literal !== null) return literal;
  if (hostname === "" || hostname.includes("\0")) {
    throw new ResolveError("INVALID_HOSTNAME", hostname);
  }
  const lib = libc();
  const c = lib.c;
  const layout = addrinfoLayout(c.platform);
  const node = encoder.encode(hostname + "\0");
  const hints = new Uint8Array(ADDRINFO_SIZE);
  const hv = new DataView(hints.buffer);
  hv.setInt32(layout.family, 0, true); // AF_UNSPEC
  hv.setInt32(layout.socktype, c.SOCK_STREAM, true);
  const result = new BigUint64Array(1);
  // The buffers stay referenced by this frame until the worker-thread call has returned.
  const rc = await lib.sym.getaddrinfoBlocking(node, null, hints, result);
  const head = result[0] === 0n ? null : Deno.UnsafePointer.create(result[0]);
  try {
    if (rc !== 0) throw new ResolveError(eaiCode(rc, c.platform), hostname, rc);
    const out: ResolvedAddress[] = [];
    const seen = new Set<string>();
    const sockaddr = new Uint8Array(SOCKADDR_STORAGE_SIZE);
    let p = head;
    // Bounded walk: a corrupt list must not hang the process.
    for (let i = 0; p !== null && i < 1024; i++) {
      const view = new Deno.UnsafePointerView(p);
      const addrlen = view.getUint32(layout.addrlen);
      const addr = view.getPointer(layout.addr);
      if (addr !== null && addrlen > 0 && addrlen <= SOCKADDR_STORAGE_SIZE) {
        sockaddr.fill(0);
        Deno.UnsafePointerView.copyInto(addr, sockaddr.subarray(0, addrlen));
        const a = decodeSockaddr(sockaddr, c);
        if (a !== null) {
          const text = formatIp(a.address);
          const address = a.family === 6 && a.scopeId ? `${text}%${a.scopeId}` : text;
          if (!seen.has(address)) {
            seen.add(address);
            out.push({ family: a.family, address });
          }
        }
      }
      p = view.getPointer(layout.next);
    }
    if (out.length === 0) throw new ResolveError("ENOTFOUND", hostname);
    return out;
  } finally {
    if (head !== null) lib.sym.freeaddrinfo(head);
  }
}

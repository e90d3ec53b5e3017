/**
 * Parsing and formatting of IP address literals, without the resolver.
 *
 * @module
 */

import { FdwsError } from "../errors.ts";

/** An IP address as bytes, with its family. */
export interface IpAddress {
  /** 4 or 6. */
  family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
  /** IPv6 zone (`%eth0` or `%2`) as an interface index, 0 when absent. */
  scopeId: number;
}

/** A host name that is not an IP literal was given where one is required. */
export class AddressError extends FdwsError {
  /**
   * @param message Human-readable description.
   */
  constructor(message: string) {
    super("INVALID_ADDRESS", message);
    this.name = "AddressError";
  }
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    // Leading zeros are refused: inet_aton would read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  let head = text;
  let tail4: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (tail4 === null) return null;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === "") return [];
    const groups = s.split(":");
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parseGroups(halves[0]);
  const right = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (left === null || right === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i] >> 8;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  if (tail4 !== null) out.set(tail4, 12);
  return out;
}

/**
 * Parses an IPv4 or IPv6 literal (brackets allowed around IPv6, `%zone` with a numeric
 * interface index). `localhost` is read as 127.0.0.1. Returns null for anything else.
 *
 * @example
 * ```ts
 * import { parseIp } from "./address.ts";
 * console.log(parseIp("::1")?.family); // 6
 * console.log(parseIp("example.com")); // null
 * ```
 */
export function parseIp(text: string): IpAddress | null {
  let s = text.trim();
  if (s === "localhost") s = "127.0.0.1";
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const v4 = parseIpv4(s);
  if (v4 !== null) return { family: 4, bytes: v4, scopeId: 0 };
  let scopeId = 0;
  const pct = s.indexOf("%");
  if (pct !== -1) {
    const zone = s.slice(pct + 1);
    if (!/^[0-9]+$/.test(zone)) return null;
    scopeId = Number(zone);
    s = s.slice(0, pct);
  }
  const v6 = parseIpv6(s);
  if (v6 !== null) return { family: 6, bytes: v6, scopeId };
  return null;
}

/**
 * Formats address bytes the way `inet_ntop` does (RFC 5952 for IPv6: lowercase, longest
 * run of zero groups compressed, IPv4-mapped addresses in dotted form).
 *
 * @example
 * ```ts
 * import { formatIp } from "./address.ts";
 * console.log(formatIp(new Uint8Array([127, 0, 0, 1]))); // "127.0.0.1"
 * ```
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (
    groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 &&
    groups[4] === 0 && groups[5] === 0xffff
  ) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

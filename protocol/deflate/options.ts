/**
 * What a server or a client is willing to negotiate for permessage-deflate, and how it
 * compresses: the user-facing options, their defaults and their validation.
 *
 * Modes, per direction (as Bun and uWebSockets name them):
 * - `"shared"`: no context takeover for that direction, so no compression state outlives a
 *   message and one stream per manager serves every connection. For our messages the server
 *   answers `server_no_context_takeover` (RFC 7692 §7.1.1.1 lets it even if not offered);
 *   for the peer's, `client_no_context_takeover` (§7.1.1.2 lets the server include it in any
 *   response, and "a client MUST support" it). A broadcast is compressed once.
 * - `"dedicated"`: context takeover, one stream per connection with a bounded window:
 *   better ratios for chatty connections, memory per connection (measured in
 *   docs/permessage-deflate.md).
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/** Where the compression state of one direction lives. */
export type DeflateMode = "shared" | "dedicated";

/**
 * A server's permessage-deflate options.
 *
 * @example Shared compression, dedicated decompression with a 4 KiB client window
 * ```ts
 * import { type DeflateServerOptions, resolveServerOptions } from "./options.ts";
 *
 * const options: DeflateServerOptions = { compress: "shared", decompress: "dedicated", clientMaxWindowBits: 12 };
 * console.log(resolveServerOptions(options).clientMaxWindowBits); // 12
 * ```
 */
export interface DeflateServerOptions {
  /** Both directions' mode unless `compress`/`decompress` say otherwise. Default `"shared"`. */
  mode?: DeflateMode;
  /** Mode of the server's messages. */
  compress?: DeflateMode;
  /** Mode of the client's messages. */
  decompress?: DeflateMode;
  /**
   * Largest window of the server's compressors, 8..15. Announced only when the client
   * offers `server_max_window_bits` (answering the smaller of the two); otherwise used
   * silently, since a smaller window is always readable (Firefox refused an unrequested
   * `server_max_window_bits`). Default 15 in shared mode (one compressor per window size
   * per manager), {@linkcode DEDICATED_WINDOW_BITS} in dedicated mode.
   */
  serverMaxWindowBits?: number;
  /**
   * Largest window the client may compress with, 8..15, answered as
   * `client_max_window_bits` when the client offers that parameter (RFC 7692 §7.1.2.2
   * forbids it otherwise; the client's window is then 15). Bounds a dedicated
   * decompressor's memory. Default 15 in shared mode, {@linkcode DEDICATED_WINDOW_BITS}
   * in dedicated mode.
   */
  clientMaxWindowBits?: number;
  /**
   * zlib memLevel of the compressors, 1..9. Default 8 in shared mode,
   * {@linkcode DEDICATED_MEM_LEVEL} in dedicated mode.
   */
  memLevel?: number;
  /** zlib level, 0..9 or -1 (zlib's default, 6). Default -1. */
  level?: number;
  /**
   * Messages shorter than this many bytes are sent uncompressed. Default
   * {@linkcode DEFAULT_THRESHOLD}.
   */
  threshold?: number;
}

/** {@linkcode DeflateServerOptions} with every default filled in. */
export interface ResolvedServerOptions {
  /** Mode of the server's messages. */
  readonly compress: DeflateMode;
  /** Mode of the client's messages. */
  readonly decompress: DeflateMode;
  /** Largest window of the server's compressors. */
  readonly serverMaxWindowBits: number;
  /** Largest client window answered when the client allows it. */
  readonly clientMaxWindowBits: number;
  /** zlib memLevel. */
  readonly memLevel: number;
  /** zlib level. */
  readonly level: number;
  /** Smallest message compressed, in bytes. */
  readonly threshold: number;
}

/**
 * A client's permessage-deflate options: what it offers.
 *
 * @example
 * ```ts
 * import { type DeflateClientOptions, resolveClientOptions } from "./options.ts";
 *
 * const options: DeflateClientOptions = { serverNoContextTakeover: true };
 * console.log(resolveClientOptions(options).clientMaxWindowBits); // true
 * ```
 */
export interface DeflateClientOptions {
  /** Ask the server not to use context takeover (`server_no_context_takeover`). */
  serverNoContextTakeover?: boolean;
  /** Promise not to use context takeover ourselves (`client_no_context_takeover`). */
  clientNoContextTakeover?: boolean;
  /** Ask the server to compress within this window, 8..15 (`server_max_window_bits`). */
  serverMaxWindowBits?: number;
  /**
   * `client_max_window_bits` in the offer: `true` (the default) lets the server choose our
   * window; a number 8..15 also promises to stay within it; `false` leaves it out (our
   * window is then 15).
   */
  clientMaxWindowBits?: number | boolean;
  /** zlib memLevel of our compressor, 1..9. Default 8. */
  memLevel?: number;
  /** zlib level, 0..9 or -1. Default -1. */
  level?: number;
  /** Messages shorter than this many bytes are sent uncompressed. */
  threshold?: number;
}

/** {@linkcode DeflateClientOptions} with every default filled in. */
export interface ResolvedClientOptions {
  /** Request `server_no_context_takeover`. */
  readonly serverNoContextTakeover: boolean;
  /** Offer `client_no_context_takeover`. */
  readonly clientNoContextTakeover: boolean;
  /** Requested `server_max_window_bits`, or `null` for none. */
  readonly serverMaxWindowBits: number | null;
  /** Offered `client_max_window_bits`: a value, `true` without one, `null` not offered. */
  readonly clientMaxWindowBits: number | true | null;
  /** zlib memLevel. */
  readonly memLevel: number;
  /** zlib level. */
  readonly level: number;
  /** Smallest message compressed, in bytes. */
  readonly threshold: number;
}

/**
 * Default window of dedicated streams: 2^13 = 8 KiB, a compressor of about 64 KiB with
 * {@linkcode DEDICATED_MEM_LEVEL} (zlib's default 15/8 costs about 256 KiB).
 */
export const DEDICATED_WINDOW_BITS = 13;

/** Default memLevel of dedicated compressors. */
export const DEDICATED_MEM_LEVEL = 6;

/**
 * Default threshold: shorter messages rarely shrink without context (a 50-byte JSON
 * message compresses to about 48).
 */
export const DEFAULT_THRESHOLD = 64;

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FdwsError("INVALID_OPTIONS", `fdws: ${name} must be an integer ${min}..${max}`);
  }
  return value;
}

function mode(name: string, value: DeflateMode): DeflateMode {
  if (value !== "shared" && value !== "dedicated") {
    throw new FdwsError("INVALID_OPTIONS", `fdws: ${name} must be "shared" or "dedicated"`);
  }
  return value;
}

function threshold(value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    throw new FdwsError("INVALID_OPTIONS", "fdws: threshold must be a non-negative integer");
  }
  return value;
}

/**
 * Fills in a server's defaults and validates every value.
 *
 * @example
 * ```ts
 * import { resolveServerOptions } from "./options.ts";
 *
 * const resolved = resolveServerOptions({ mode: "dedicated" });
 * console.log(resolved.serverMaxWindowBits, resolved.memLevel); // 13 6
 * ```
 *
 * @param options The server's options (`{}` for all defaults).
 * @returns The options in force.
 * @throws {FdwsError} `INVALID_OPTIONS` for a value out of range.
 */
export function resolveServerOptions(options: DeflateServerOptions = {}): ResolvedServerOptions {
  const both = mode("mode", options.mode ?? "shared");
  const compress = mode("compress", options.compress ?? both);
  const decompress = mode("decompress", options.decompress ?? both);
  return {
    compress,
    decompress,
    serverMaxWindowBits: integer(
      "serverMaxWindowBits",
      options.serverMaxWindowBits ?? (compress === "shared" ? 15 : DEDICATED_WINDOW_BITS),
      8,
      15,
    ),
    clientMaxWindowBits: integer(
      "clientMaxWindowBits",
      options.clientMaxWindowBits ?? (decompress === "shared" ? 15 : DEDICATED_WINDOW_BITS),
      8,
      15,
    ),
    memLevel: integer(
      "memLevel",
      options.memLevel ?? (compress === "shared" ? 8 : DEDICATED_MEM_LEVEL),
      1,
      9,
    ),
    level: integer("level", options.level ?? -1, -1, 9),
    threshold: threshold(options.threshold ?? DEFAULT_THRESHOLD),
  };
}

/**
 * Fills in a client's defaults and validates every value.
 *
 * @example
 * ```ts
 * import { resolveClientOptions } from "./options.ts";
 *
 * console.log(resolveClientOptions({}).serverMaxWindowBits); // null
 * ```
 *
 * @param options The client's options (`{}` for all defaults).
 * @returns The options in force.
 * @throws {FdwsError} `INVALID_OPTIONS` for a value out of range.
 */
export function resolveClientOptions(options: DeflateClientOptions = {}): ResolvedClientOptions {
  const client = options.clientMaxWindowBits ?? true;
  return {
    serverNoContextTakeover: options.serverNoContextTakeover ?? false,
    clientNoContextTakeover: options.clientNoContextTakeover ?? false,
    serverMaxWindowBits: options.serverMaxWindowBits === undefined
      ? null
      : integer("serverMaxWindowBits", options.serverMaxWindowBits, 8, 15),
    clientMaxWindowBits: typeof client === "boolean"
      ? (client ? true : null)
      : integer("clientMaxWindowBits", client, 8, 15),
    memLevel: integer("memLevel", options.memLevel ?? 8, 1, 9),
    level: integer("level", options.level ?? -1, -1, 9),
    threshold: threshold(options.threshold ?? DEFAULT_THRESHOLD),
  };
}

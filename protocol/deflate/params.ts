/**
 * The parameters of permessage-deflate (RFC 7692 §7.1): reading them from an offer or a
 * response with the checks of RFC 7692 §7 (unknown parameter, duplicate, invalid value),
 * writing them back as an extension element, and the parameters both ends agreed.
 *
 * @module
 */

/** The extension's registered name (RFC 7692 §7). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * What both ends agreed for one connection, as the windows in force: `serverMaxWindowBits`
 * is the window of the server's compressor (what the client's decompressor must hold),
 * `clientMaxWindowBits` the window of the client's compressor. With
 * `*NoContextTakeover`, that side's compressor starts every message from an empty window.
 */
export interface DeflateParameters {
  /** The server compresses every message alone (RFC 7692 §7.1.1.1). */
  readonly serverNoContextTakeover: boolean;
  /** The client compresses every message alone (RFC 7692 §7.1.1.2). */
  readonly clientNoContextTakeover: boolean;
  /** Base-2 logarithm of the server's LZ77 window, 8..15 (RFC 7692 §7.1.2.1). */
  readonly serverMaxWindowBits: number;
  /** Base-2 logarithm of the client's LZ77 window, 8..15 (RFC 7692 §7.1.2.2). */
  readonly clientMaxWindowBits: number;
}

/**
 * The parameters of one element, read: `null` for an absent window, `true` for
 * `client_max_window_bits` without a value (allowed in an offer only).
 */
export interface DeflateElement {
  /** `server_no_context_takeover` is present. */
  readonly serverNoContextTakeover: boolean;
  /** `client_no_context_takeover` is present. */
  readonly clientNoContextTakeover: boolean;
  /** `server_max_window_bits`'s value, or `null`. */
  readonly serverMaxWindowBits: number | null;
  /** `client_max_window_bits`'s value, `true` when given without one, or `null`. */
  readonly clientMaxWindowBits: number | true | null;
}

/** Result of {@linkcode readOffer} and {@linkcode readResponse}. */
export type ElementRead =
  | { readonly ok: true; readonly element: DeflateElement }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads a window size: a decimal integer 8..15 without leading zeroes (RFC 7692 §7.1.2.1,
 * §7.1.2.2; `1*DIGIT` restricted to that range).
 *
 * @example
 * ```ts
 * import { parseWindowBits } from "./params.ts";
 *
 * console.log(parseWindowBits("10"), parseWindowBits("010"), parseWindowBits("16")); // 10 null null
 * ```
 *
 * @param value The parameter's value.
 * @returns 8..15, or `null` when invalid.
 */
export function parseWindowBits(value: string): number | null {
  switch (value) {
    case "8":
    case "9":
    case "10":
    case "11":
    case "12":
    case "13":
    case "14":
    case "15":
      return Number(value);
    default:
      return null;
  }
}

function read(
  params: ReadonlyArray<readonly [string, string | null]>,
  inOffer: boolean,
): ElementRead {
  let serverNoContextTakeover = false;
  let clientNoContextTakeover = false;
  let serverMaxWindowBits: number | null = null;
  let clientMaxWindowBits: number | true | null = null;
  const seen = new Set<string>();
  for (const [name, value] of params) {
    if (seen.has(name)) return { ok: false, reason: `duplicate parameter ${name}` };
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        // §7.1.1.1, §7.1.1.2: "This extension parameter has no value."
        if (value !== null) return { ok: false, reason: `${name} takes no value` };
        if (name === "server_no_context_takeover") serverNoContextTakeover = true;
        else clientNoContextTakeover = true;
        break;
      case "server_max_window_bits": {
        // §7.1.2.1: a value is required, in an offer and in a response.
        const bits = value === null ? null : parseWindowBits(value);
        if (bits === null) return { ok: false, reason: `invalid ${name} value ${value}` };
        serverMaxWindowBits = bits;
        break;
      }
      case "client_max_window_bits": {
        // §7.1.2.2: optional in an offer, required in a response.
        if (value === null && inOffer) {
          clientMaxWindowBits = true;
          break;
        }
        const bits = value === null ? null : parseWindowBits(value);
        if (bits === null) return { ok: false, reason: `invalid ${name} value ${value}` };
        clientMaxWindowBits = bits;
        break;
      }
      default:
        return { ok: false, reason: `unknown parameter ${name}` };
    }
  }
  return {
    ok: true,
    element: {
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits,
      clientMaxWindowBits,
    },
  };
}

/**
 * Reads the parameters of a client's offer. RFC 7692 §7: a server MUST decline an offer
 * with a parameter not defined for an offer, an invalid value, or the same parameter twice;
 * the reason is returned for that.
 *
 * @example
 * ```ts
 * import { readOffer } from "./params.ts";
 *
 * const read = readOffer([["client_max_window_bits", null], ["server_max_window_bits", "10"]]);
 * if (read.ok) console.log(read.element.clientMaxWindowBits, read.element.serverMaxWindowBits); // true 10
 * ```
 *
 * @param params The element's parameters, as {@linkcode parseExtensions} returns them.
 * @returns The parameters, or why the offer must be declined.
 */
export function readOffer(params: ReadonlyArray<readonly [string, string | null]>): ElementRead {
  return read(params, true);
}

/**
 * Reads the parameters of a server's response. RFC 7692 §7: a client MUST fail the
 * connection on a parameter not defined for a response, an invalid value (including
 * `client_max_window_bits` without one), or the same parameter twice.
 *
 * @example
 * ```ts
 * import { readResponse } from "./params.ts";
 *
 * const read = readResponse([["client_max_window_bits", null]]);
 * if (!read.ok) console.log(read.reason); // "invalid client_max_window_bits value null"
 * ```
 *
 * @param params The element's parameters.
 * @returns The parameters, or why the connection must fail.
 */
export function readResponse(params: ReadonlyArray<readonly [string, string | null]>): ElementRead {
  return read(params, false);
}

/**
 * Writes an element: the extension name and the parameters present, in a fixed order.
 *
 * @example
 * ```ts
 * import { formatElement } from "./params.ts";
 *
 * console.log(formatElement({
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: false,
 *   serverMaxWindowBits: null,
 *   clientMaxWindowBits: true,
 * })); // "permessage-deflate; server_no_context_takeover; client_max_window_bits"
 * ```
 *
 * @param element The parameters to write.
 * @returns The header element.
 */
export function formatElement(element: DeflateElement): string {
  let out = PERMESSAGE_DEFLATE;
  if (element.serverNoContextTakeover) out += "; server_no_context_takeover";
  if (element.clientNoContextTakeover) out += "; client_no_context_takeover";
  if (element.serverMaxWindowBits !== null) {
    out += `; server_max_window_bits=${element.serverMaxWindowBits}`;
  }
  if (element.clientMaxWindowBits === true) out += "; client_max_window_bits";
  else if (element.clientMaxWindowBits !== null) {
    out += `; client_max_window_bits=${element.clientMaxWindowBits}`;
  }
  return out;
}

/**
 * Server side of permessage-deflate negotiation: picks the first offer it can honour from
 * the client's `Sec-WebSocket-Extensions` (RFC 7692 §5: "An element preceding another
 * element has higher preference"), declines the others, and writes the response element.
 *
 * What can be declined and what fails the handshake:
 * - An offer with an unknown parameter, a duplicate or an invalid value is declined
 *   (RFC 7692 §7: the server "MUST decline"); the next offer is tried. Every valid offer can
 *   be honoured (windows 8..15, either context takeover), so none is declined otherwise.
 * - A header that does not follow RFC 6455 §9.1's grammar fails the handshake: the
 *   recipient "MUST immediately _Fail the WebSocket Connection_" (answer 400).
 * - Declining every offer is not a failure: the connection opens uncompressed.
 *
 * @module
 */

import { parseExtensions } from "./extensions.ts";
import type { ResolvedServerOptions } from "./options.ts";
import { type DeflateParameters, formatElement, PERMESSAGE_DEFLATE, readOffer } from "./params.ts";

/** Result of {@linkcode negotiateServer}. */
export type ServerNegotiation =
  | {
    /** An offer was accepted: send `response` as `Sec-WebSocket-Extensions`. */
    readonly kind: "accepted";
    /** What was agreed, for the connection's compressor and decompressor. */
    readonly params: DeflateParameters;
    /** The response element, e.g. `"permessage-deflate; server_no_context_takeover"`. */
    readonly response: string;
  }
  | {
    /** No offer was accepted: open the connection without the extension. */
    readonly kind: "declined";
    /** Why each permessage-deflate offer was declined, in order; empty when none came. */
    readonly reasons: readonly string[];
  }
  | {
    /** The header breaks RFC 6455 §9.1: fail the handshake (400). */
    readonly kind: "malformed";
    /** What is wrong with it. */
    readonly reason: string;
  };

/**
 * Chooses the response to a client's extension offers.
 *
 * Per offer:
 * - `server_no_context_takeover` is answered when offered (RFC 7692 §7.1.1.1: the server
 *   "accepts ... by including" it) and always in shared compression mode (a server "MAY
 *   include" it unrequested).
 * - `client_no_context_takeover` is answered when offered (§7.1.1.2: the server may "use
 *   the parameter ... by including" it; then the client's messages need no dedicated
 *   decompressor) and always in shared decompression mode (a server "MAY include" it).
 * - `server_max_window_bits=N` offered: answered with the smaller of N and the server's
 *   window (§7.1.2.1: "the same or smaller value"). Not offered: not answered (Firefox
 *   refused it unrequested); the server still compresses within its own window, which
 *   any decompressor holding 2^15 bytes reads.
 * - `client_max_window_bits` offered (with or without a value): answered with the smaller
 *   of its value (15 if none) and the server's limit, when below 15 (§7.1.2.2). Not
 *   offered: the response "MUST NOT include" it and the client's window is 15.
 *
 * @example Chromium's offer, shared mode
 * ```ts
 * import { negotiateServer } from "./server.ts";
 * import { resolveServerOptions } from "./options.ts";
 *
 * const result = negotiateServer(
 *   "permessage-deflate; client_max_window_bits",
 *   resolveServerOptions({ mode: "shared" }),
 * );
 * if (result.kind === "accepted") console.log(result.response);
 * // "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
 * ```
 *
 * @param header The request's `Sec-WebSocket-Extensions` value or lines, `null` if absent.
 * @param options The server's resolved options.
 * @returns Accepted (agreed parameters and response), declined, or malformed.
 */
export function negotiateServer(
  header: string | readonly string[] | null,
  options: ResolvedServerOptions,
): ServerNegotiation {
  const parsed = parseExtensions(header);
  if (!parsed.ok) return { kind: "malformed", reason: parsed.reason };
  const reasons: string[] = [];
  for (const element of parsed.elements) {
    if (element.name !== PERMESSAGE_DEFLATE) continue;
    const read = readOffer(element.params);
    if (!read.ok) {
      reasons.push(read.reason);
      continue;
    }
    const offer = read.element;
    const serverNoContextTakeover = offer.serverNoContextTakeover || options.compress === "shared";
    const clientNoContextTakeover = offer.clientNoContextTakeover ||
      options.decompress === "shared";
    const serverMaxWindowBits = Math.min(
      offer.serverMaxWindowBits ?? 15,
      options.serverMaxWindowBits,
    );
    const clientCap = offer.clientMaxWindowBits === null ? 15 : Math.min(
      offer.clientMaxWindowBits === true ? 15 : offer.clientMaxWindowBits,
      options.clientMaxWindowBits,
    );
    const response = formatElement({
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits: offer.serverMaxWindowBits === null ? null : serverMaxWindowBits,
      clientMaxWindowBits: offer.clientMaxWindowBits === null || clientCap === 15
        ? null
        : clientCap,
    });
    return {
      kind: "accepted",
      params: {
        serverNoContextTakeover,
        clientNoContextTakeover,
        serverMaxWindowBits,
        clientMaxWindowBits: clientCap,
      },
      response,
    };
  }
  return { kind: "declined", reasons };
}

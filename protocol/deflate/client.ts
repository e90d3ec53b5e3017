/**
 * Client side of permessage-deflate negotiation: the offer to send, and the checks of the
 * server's response that decide whether the connection proceeds compressed, proceeds
 * without the extension, or fails.
 *
 * The client fails the connection (abandons the handshake) when:
 * - the header breaks RFC 6455 §9.1's grammar;
 * - it names an extension that was not offered (RFC 6455 §4.1), or permessage-deflate twice;
 * - RFC 7692 §7: a parameter not defined for a response, an invalid value (including
 *   `client_max_window_bits` without one), a duplicate, or a configuration the client does
 *   not support: `server_no_context_takeover` or `server_max_window_bits` missing although
 *   requested (§7.1.1.1, §7.1.2.1: the server accepts them "by including" them), a
 *   `server_max_window_bits` above the requested one (§7.1.2.1: "the same or smaller"),
 *   `client_max_window_bits` when the offer had none (§7.1.2.2: "MUST NOT include") or
 *   above the offered value.
 *
 * @module
 */

import { parseExtensions } from "./extensions.ts";
import type { ResolvedClientOptions } from "./options.ts";
import {
  type DeflateParameters,
  formatElement,
  PERMESSAGE_DEFLATE,
  readResponse,
} from "./params.ts";

/**
 * The `Sec-WebSocket-Extensions` value a client sends.
 *
 * @example A browser-like offer
 * ```ts
 * import { buildOffer } from "./client.ts";
 * import { resolveClientOptions } from "./options.ts";
 *
 * console.log(buildOffer(resolveClientOptions({}))); // "permessage-deflate; client_max_window_bits"
 * ```
 *
 * @param options The client's resolved options.
 * @returns The offer.
 */
export function buildOffer(options: ResolvedClientOptions): string {
  return formatElement({
    serverNoContextTakeover: options.serverNoContextTakeover,
    clientNoContextTakeover: options.clientNoContextTakeover,
    serverMaxWindowBits: options.serverMaxWindowBits,
    clientMaxWindowBits: options.clientMaxWindowBits,
  });
}

/** Result of {@linkcode acceptResponse}. */
export type ClientNegotiation =
  | {
    /** The server accepted: compress with these parameters. */
    readonly kind: "accepted";
    /** What was agreed. */
    readonly params: DeflateParameters;
  }
  | {
    /** The server declined (no extension in its response): proceed uncompressed. */
    readonly kind: "declined";
  }
  | {
    /** Fail the connection. */
    readonly kind: "failed";
    /** Why. */
    readonly reason: string;
  };

/**
 * Checks the server's `Sec-WebSocket-Extensions` against what was offered with
 * {@linkcode buildOffer} and the same options.
 *
 * @example
 * ```ts
 * import { acceptResponse } from "./client.ts";
 * import { resolveClientOptions } from "./options.ts";
 *
 * const options = resolveClientOptions({});
 * const result = acceptResponse("permessage-deflate; client_max_window_bits=10", options);
 * if (result.kind === "accepted") console.log(result.params.clientMaxWindowBits); // 10
 * console.log(acceptResponse("permessage-deflate; foo", options).kind); // "failed"
 * ```
 *
 * @param header The response's `Sec-WebSocket-Extensions` value or lines, `null` if absent.
 * @param options The client's resolved options (those the offer was built from).
 * @returns Accepted with the agreed parameters, declined, or failed with the reason.
 */
export function acceptResponse(
  header: string | readonly string[] | null,
  options: ResolvedClientOptions,
): ClientNegotiation {
  const fail = (reason: string): ClientNegotiation => ({ kind: "failed", reason });
  const parsed = parseExtensions(header);
  if (!parsed.ok) return fail(`malformed Sec-WebSocket-Extensions: ${parsed.reason}`);
  if (parsed.elements.length === 0) return { kind: "declined" };
  if (parsed.elements.length > 1) return fail("the server accepted more than one extension");
  const element = parsed.elements[0];
  if (element.name !== PERMESSAGE_DEFLATE) {
    return fail(`the server accepted an extension that was not offered: ${element.name}`);
  }
  const read = readResponse(element.params);
  if (!read.ok) return fail(read.reason);
  const response = read.element;
  if (options.serverNoContextTakeover && !response.serverNoContextTakeover) {
    return fail("server_no_context_takeover was requested but not accepted");
  }
  if (options.serverMaxWindowBits !== null) {
    if (response.serverMaxWindowBits === null) {
      return fail("server_max_window_bits was requested but not accepted");
    }
    if (response.serverMaxWindowBits > options.serverMaxWindowBits) {
      return fail(`server_max_window_bits ${response.serverMaxWindowBits} is above the request`);
    }
  }
  const offered = options.clientMaxWindowBits;
  // Without a response value the window is what the offer promised, else 15 (§7.1.2.2).
  let clientMaxWindowBits: number = typeof offered === "number" ? offered : 15;
  if (response.clientMaxWindowBits !== null) {
    if (offered === null) return fail("client_max_window_bits was not offered");
    if (
      response.clientMaxWindowBits === true || response.clientMaxWindowBits > clientMaxWindowBits
    ) {
      return fail(`client_max_window_bits ${response.clientMaxWindowBits} is above the offer`);
    }
    clientMaxWindowBits = response.clientMaxWindowBits;
  }
  return {
    kind: "accepted",
    params: {
      serverNoContextTakeover: response.serverNoContextTakeover,
      clientNoContextTakeover: response.clientNoContextTakeover || options.clientNoContextTakeover,
      serverMaxWindowBits: response.serverMaxWindowBits ?? 15,
      clientMaxWindowBits,
    },
  };
}

/**
 * The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1), for any extension:
 *
 * ```text
 * extension-list = 1#extension
 * extension      = extension-token *( ";" extension-param )
 * extension-param = token [ "=" (token | quoted-string) ]
 * ```
 *
 * with RFC 2616's implied linear whitespace between tokens and separators, empty list
 * elements allowed (`#rule`), and a quoted value required to be a token once unescaped.
 * The field may be split over several header lines; they are one list.
 *
 * RFC 6455 §9.1: a recipient of a value that does not conform "MUST immediately _Fail the
 * WebSocket Connection_" (a server answers the handshake with 400).
 *
 * @module
 */

import { isToken, TCHAR } from "../http/head.ts";

/** One extension element: its name and its parameters in order (value `null` if absent). */
export interface ExtensionElement {
  /** The extension token, as sent (compared case-sensitively: RFC 7692 names are lowercase). */
  readonly name: string;
  /** `[name, value]` pairs in order; a value given as a quoted-string is unescaped. */
  readonly params: ReadonlyArray<readonly [string, string | null]>;
}

/** Result of {@linkcode parseExtensions}. */
export type ExtensionsParse =
  | { readonly ok: true; readonly elements: readonly ExtensionElement[] }
  | { readonly ok: false; readonly reason: string };

const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Parses the values of every `Sec-WebSocket-Extensions` line of a request or response.
 *
 * @example Two offers of permessage-deflate, one with a quoted value, over two lines
 * ```ts
 * import { parseExtensions } from "./extensions.ts";
 *
 * const parsed = parseExtensions([
 *   "permessage-deflate; client_max_window_bits",
 *   'permessage-deflate; server_max_window_bits="10", x-other',
 * ]);
 * if (parsed.ok) console.log(parsed.elements.map((e) => e.name)); // [ "permessage-deflate", "permessage-deflate", "x-other" ]
 * ```
 *
 * @param header The field's value, or each of its lines, or `null` when absent.
 * @returns The elements in order (none when the field is absent), or why the value does
 * not conform (including a field present with no element at all, which `1#` forbids).
 */
export function parseExtensions(header: string | readonly string[] | null): ExtensionsParse {
  if (header === null || (typeof header !== "string" && header.length === 0)) {
    return { ok: true, elements: [] };
  }
  // Lines of a list-valued field join with commas (RFC 9110 §5.3).
  const value = typeof header === "string" ? header : header.join(",");
  const elements: ExtensionElement[] = [];
  const n = value.length;
  let p = 0;
  const skipWhitespace = (): void => {
    while (p < n) {
      const c = value.charCodeAt(p);
      if (c !== SP && c !== HTAB) break;
      p++;
    }
  };
  const token = (): string => {
    const start = p;
    while (p < n) {
      const c = value.charCodeAt(p);
      if (c > 0xff || TCHAR[c] !== 1) break;
      p++;
    }
    return value.slice(start, p);
  };
  const fail = (reason: string): ExtensionsParse => ({ ok: false, reason });
  for (;;) {
    skipWhitespace();
    if (p === n) break;
    if (value.charCodeAt(p) === COMMA) {
      p++;
      continue;
    }
    const name = token();
    if (name === "") return fail(`expected an extension name at offset ${p}`);
    const params: Array<readonly [string, string | null]> = [];
    skipWhitespace();
    while (p < n && value.charCodeAt(p) === SEMICOLON) {
      p++;
      skipWhitespace();
      const param = token();
      if (param === "") return fail(`expected a parameter name at offset ${p}`);
      skipWhitespace();
      let paramValue: string | null = null;
      if (p < n && value.charCodeAt(p) === EQUALS) {
        p++;
        skipWhitespace();
        if (p < n && value.charCodeAt(p) === DQUOTE) {
          p++;
          let unescaped = "";
          let closed = false;
          while (p < n) {
            const c = value.charCodeAt(p++);
            if (c === DQUOTE) {
              closed = true;
              break;
            }
            if (c === BACKSLASH) {
              if (p === n) break;
              unescaped += value[p++];
            } else {
              unescaped += value[p - 1];
            }
          }
          if (!closed) return fail(`unterminated quoted-string in parameter ${param}`);
          if (!isToken(unescaped)) {
            return fail(`quoted value of ${param} is not a token once unescaped`);
          }
          paramValue = unescaped;
        } else {
          paramValue = token();
          if (paramValue === "") return fail(`expected a value for parameter ${param}`);
        }
        skipWhitespace();
      }
      params.push([param, paramValue]);
    }
    if (p < n && value.charCodeAt(p) !== COMMA) {
      return fail(`unexpected ${JSON.stringify(value[p])} at offset ${p}`);
    }
    elements.push({ name, params });
  }
  if (elements.length === 0) return fail("the field holds no extension");
  return { ok: true, elements };
}

/**
 * The Sec-WebSocket-Extensions grammar (RFC 6455 §9.1): tables of conforming values with
 * the elements expected, and of values that break the grammar.
 */

import assert from "node:assert/strict";
import { type ExtensionElement, parseExtensions } from "../../../protocol/deflate/extensions.ts";

type Header = string | readonly string[] | null;

const PMD = "permessage-deflate";

const VALID: [Header, ExtensionElement[]][] = [
  [null, []],
  [[], []],
  [PMD, [{ name: PMD, params: [] }]],
  [`${PMD}; client_max_window_bits`, [{ name: PMD, params: [["client_max_window_bits", null]] }]],
  // Implied linear whitespace around every separator, spaces and tabs.
  [
    ` \t${PMD} ;client_max_window_bits ;\tserver_max_window_bits = 10 \t`,
    [{ name: PMD, params: [["client_max_window_bits", null], ["server_max_window_bits", "10"]] }],
  ],
  // Quoted-string values, unescaped (RFC 7692 §7.1.2.1 values may be quoted).
  [`${PMD}; server_max_window_bits="10"`, [{
    name: PMD,
    params: [["server_max_window_bits", "10"]],
  }]],
  [`${PMD}; server_max_window_bits="1\\0"`, [{
    name: PMD,
    params: [["server_max_window_bits", "10"]],
  }]],
  [`${PMD}; x = "a" ; y`, [{ name: PMD, params: [["x", "a"], ["y", null]] }]],
  // Several extensions, several offers of the same one, empty list elements.
  [
    `a, b; x=1, ${PMD}`,
    [{ name: "a", params: [] }, { name: "b", params: [["x", "1"]] }, { name: PMD, params: [] }],
  ],
  [`, ,${PMD} ,, ${PMD};y ,`, [{ name: PMD, params: [] }, { name: PMD, params: [["y", null]] }]],
  // Lines are one list; an empty line is an empty element.
  [[`${PMD}; a`, "x-foo"], [{ name: PMD, params: [["a", null]] }, { name: "x-foo", params: [] }]],
  [["", PMD], [{ name: PMD, params: [] }]],
  // Names keep their case (permessage-deflate is matched case-sensitively by the callers).
  ["Permessage-Deflate; A=B", [{ name: "Permessage-Deflate", params: [["A", "B"]] }]],
  // Every tchar is allowed in a token.
  ["!#$%&'*+-.^_`|~09azAZ; !#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~09azAZ", [{
    name: "!#$%&'*+-.^_`|~09azAZ",
    params: [["!#$%&'*+-.^_`|~09azAZ", "!#$%&'*+-.^_`|~09azAZ"]],
  }]],
];

const MALFORMED: Header[] = [
  "", // 1#extension: at least one element
  " , ,",
  [""],
  ["", " "],
  `${PMD};`,
  `${PMD}; ;a`,
  `${PMD}; =1`,
  `${PMD}; a=`,
  `${PMD}; a= ;b`,
  `${PMD}; a="10`,
  `${PMD}; a="\\`,
  `${PMD}; a=""`, // an empty string is not a token
  `${PMD}; a="1 0"`,
  `${PMD}; a="x,y"`,
  `${PMD}; a="x;y"`,
  `${PMD}; a="é"`,
  `${PMD}; a=1=2`,
  `${PMD}; a=1 2`,
  `${PMD}; a b`,
  `${PMD} x`,
  "permessage deflate",
  "@ext",
  ";a",
  `${PMD}; a=é`,
  `${PMD}; a/b`,
  `${PMD}, ;a`,
  [PMD, `${PMD}; a=`], // a bad line spoils the field
];

Deno.test("Sec-WebSocket-Extensions: conforming values", () => {
  for (const [header, elements] of VALID) {
    const parsed = parseExtensions(header);
    assert.ok(parsed.ok, `${JSON.stringify(header)}: ${parsed.ok ? "" : parsed.reason}`);
    assert.deepEqual(parsed.elements, elements, JSON.stringify(header));
  }
});

Deno.test("Sec-WebSocket-Extensions: values that break RFC 6455 §9.1", () => {
  for (const header of MALFORMED) {
    const parsed = parseExtensions(header);
    assert.equal(parsed.ok, false, JSON.stringify(header));
    if (!parsed.ok) assert.ok(parsed.reason.length > 0);
  }
});

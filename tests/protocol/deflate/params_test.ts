/**
 * permessage-deflate parameters (RFC 7692 §7.1): window values, what an offer and a response
 * may carry, and writing elements back.
 */

import assert from "node:assert/strict";
import {
  type DeflateElement,
  formatElement,
  parseWindowBits,
  readOffer,
  readResponse,
} from "../../../protocol/deflate/params.ts";

type Params = Array<[string, string | null]>;

const NONE: DeflateElement = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: null,
  clientMaxWindowBits: null,
};

Deno.test("window bits: 8..15 in decimal without leading zeroes, nothing else", () => {
  const valid = new Map([["8", 8], ["9", 9], ["10", 10], ["11", 11], ["12", 12], ["13", 13], [
    "14",
    14,
  ], ["15", 15]]);
  const candidates = [
    ...Array.from({ length: 40 }, (_, i) => String(i)),
    "08",
    "015",
    "+9",
    "-9",
    " 9",
    "9 ",
    "",
    "15.0",
    "1e1",
    "0x9",
    "٩", // Arabic-Indic digit nine
    "true",
  ];
  for (const value of candidates) {
    assert.equal(parseWindowBits(value), valid.get(value) ?? null, JSON.stringify(value));
  }
});

// [params, element read from an offer or null if declined, element read from a response or
// null if the connection fails]
const TABLE: [Params, DeflateElement | null, DeflateElement | null][] = [
  [[], NONE, NONE],
  [[["server_no_context_takeover", null]], { ...NONE, serverNoContextTakeover: true }, {
    ...NONE,
    serverNoContextTakeover: true,
  }],
  [[["client_no_context_takeover", null]], { ...NONE, clientNoContextTakeover: true }, {
    ...NONE,
    clientNoContextTakeover: true,
  }],
  [[["server_max_window_bits", "8"]], { ...NONE, serverMaxWindowBits: 8 }, {
    ...NONE,
    serverMaxWindowBits: 8,
  }],
  [[["client_max_window_bits", "15"]], { ...NONE, clientMaxWindowBits: 15 }, {
    ...NONE,
    clientMaxWindowBits: 15,
  }],
  // client_max_window_bits without a value: an offer may, a response may not (§7.1.2.2).
  [[["client_max_window_bits", null]], { ...NONE, clientMaxWindowBits: true }, null],
  // server_max_window_bits always needs a value (§7.1.2.1).
  [[["server_max_window_bits", null]], null, null],
  [[["server_max_window_bits", "7"]], null, null],
  [[["server_max_window_bits", "16"]], null, null],
  [[["client_max_window_bits", "08"]], null, null],
  // The no-context parameters take no value (§7.1.1.1, §7.1.1.2).
  [[["server_no_context_takeover", "1"]], null, null],
  [[["client_no_context_takeover", "true"]], null, null],
  // Unknown parameters, in any case (names are case-sensitive).
  [[["foo", null]], null, null],
  [[["Server_No_Context_Takeover", null]], null, null],
  [[["server_max_window_bits", "10"], ["x", "1"]], null, null],
  // Duplicates, with or without values, even with equal values.
  [[["server_no_context_takeover", null], ["server_no_context_takeover", null]], null, null],
  [[["client_max_window_bits", null], ["client_max_window_bits", "10"]], null, null],
  [[["server_max_window_bits", "10"], ["server_max_window_bits", "10"]], null, null],
  // Everything at once, any order.
  [
    [
      ["client_max_window_bits", "9"],
      ["server_max_window_bits", "12"],
      ["client_no_context_takeover", null],
      ["server_no_context_takeover", null],
    ],
    {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 9,
    },
    {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 9,
    },
  ],
];

Deno.test("offer and response parameters (RFC 7692 §7)", () => {
  for (const [params, offer, response] of TABLE) {
    const asOffer = readOffer(params);
    const asResponse = readResponse(params);
    assert.deepEqual(asOffer.ok ? asOffer.element : null, offer, `offer ${JSON.stringify(params)}`);
    assert.deepEqual(
      asResponse.ok ? asResponse.element : null,
      response,
      `response ${JSON.stringify(params)}`,
    );
    if (!asOffer.ok) assert.ok(asOffer.reason.length > 0);
  }
});

Deno.test("elements written back", () => {
  const cases: [DeflateElement, string][] = [
    [NONE, "permessage-deflate"],
    [{ ...NONE, clientMaxWindowBits: true }, "permessage-deflate; client_max_window_bits"],
    [
      {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 8,
      },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
      "server_max_window_bits=10; client_max_window_bits=8",
    ],
  ];
  for (const [element, text] of cases) assert.equal(formatElement(element), text);
});

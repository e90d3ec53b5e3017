/**
 * Server-side negotiation: real clients' offers, several offers in one header and across
 * lines, declined offers (RFC 7692 §7), malformed headers (RFC 6455 §9.1), window and
 * context takeover answers per mode.
 */

import assert from "node:assert/strict";
import { negotiateServer, type ServerNegotiation } from "../../../protocol/deflate/server.ts";
import {
  type DeflateServerOptions,
  resolveServerOptions,
} from "../../../protocol/deflate/options.ts";
import type { DeflateParameters } from "../../../protocol/deflate/params.ts";

type Header = string | readonly string[] | null;

const PMD = "permessage-deflate";
const SHARED: DeflateServerOptions = { mode: "shared" };
const DEDICATED: DeflateServerOptions = { mode: "dedicated" }; // windows 13, memLevel 6

function params(
  serverNoContextTakeover: boolean,
  clientNoContextTakeover: boolean,
  serverMaxWindowBits: number,
  clientMaxWindowBits: number,
): DeflateParameters {
  return {
    serverNoContextTakeover,
    clientNoContextTakeover,
    serverMaxWindowBits,
    clientMaxWindowBits,
  };
}

function accepted(response: string, agreed: DeflateParameters): ServerNegotiation {
  return { kind: "accepted", response, params: agreed };
}

const BOTH = `${PMD}; server_no_context_takeover; client_no_context_takeover`;

const CASES: [string, DeflateServerOptions, Header, ServerNegotiation][] = [
  // Nothing offered.
  ["no header", SHARED, null, { kind: "declined", reasons: [] }],
  ["another extension only", SHARED, "x-webkit-deflate-frame", { kind: "declined", reasons: [] }],
  ["name in another case", SHARED, "Permessage-Deflate", { kind: "declined", reasons: [] }],
  // Real offers (Chromium, Firefox, ws, Python websockets send the first form).
  [
    "Chromium, shared",
    SHARED,
    `${PMD}; client_max_window_bits`,
    accepted(BOTH, params(true, true, 15, 15)),
  ],
  ["bare offer, shared", SHARED, PMD, accepted(BOTH, params(true, true, 15, 15))],
  [
    "Chromium, dedicated",
    DEDICATED,
    `${PMD}; client_max_window_bits`,
    accepted(`${PMD}; client_max_window_bits=13`, params(false, false, 13, 13)),
  ],
  // Without client_max_window_bits the client's window cannot be limited (§7.1.2.2).
  ["bare offer, dedicated", DEDICATED, PMD, accepted(PMD, params(false, false, 13, 15))],
  // server_max_window_bits: the smaller of the two, answered only when offered (§7.1.2.1).
  [
    "server window above ours",
    DEDICATED,
    `${PMD}; server_max_window_bits=15`,
    accepted(`${PMD}; server_max_window_bits=13`, params(false, false, 13, 15)),
  ],
  [
    "server window below ours",
    DEDICATED,
    `${PMD}; server_max_window_bits=10`,
    accepted(`${PMD}; server_max_window_bits=10`, params(false, false, 10, 15)),
  ],
  [
    "server window 8",
    SHARED,
    `${PMD}; server_max_window_bits=8`,
    accepted(`${BOTH}; server_max_window_bits=8`, params(true, true, 8, 15)),
  ],
  [
    "quoted server window",
    DEDICATED,
    `${PMD}; server_max_window_bits="9"`,
    accepted(`${PMD}; server_max_window_bits=9`, params(false, false, 9, 15)),
  ],
  // client_max_window_bits with a value: the client stays within it; answered.
  [
    "client window hint below ours",
    DEDICATED,
    `${PMD}; client_max_window_bits=10`,
    accepted(`${PMD}; client_max_window_bits=10`, params(false, false, 13, 10)),
  ],
  [
    "client window hint above ours",
    DEDICATED,
    `${PMD}; client_max_window_bits=15`,
    accepted(`${PMD}; client_max_window_bits=13`, params(false, false, 13, 13)),
  ],
  [
    "client window hint, shared",
    SHARED,
    `${PMD}; client_max_window_bits=9`,
    accepted(`${BOTH}; client_max_window_bits=9`, params(true, true, 15, 9)),
  ],
  // Context takeover requests and hints are honoured in dedicated mode.
  [
    "server_no_context_takeover requested",
    DEDICATED,
    `${PMD}; server_no_context_takeover`,
    accepted(`${PMD}; server_no_context_takeover`, params(true, false, 13, 15)),
  ],
  [
    "client_no_context_takeover hinted",
    DEDICATED,
    `${PMD}; client_no_context_takeover; client_max_window_bits`,
    accepted(
      `${PMD}; client_no_context_takeover; client_max_window_bits=13`,
      params(false, true, 13, 13),
    ),
  ],
  // Mixed modes.
  [
    "shared compression, dedicated decompression",
    { compress: "shared", decompress: "dedicated", clientMaxWindowBits: 11 },
    `${PMD}; client_max_window_bits`,
    accepted(
      `${PMD}; server_no_context_takeover; client_max_window_bits=11`,
      params(true, false, 15, 11),
    ),
  ],
  [
    "dedicated compression, shared decompression",
    { compress: "dedicated", decompress: "shared" },
    `${PMD}; client_max_window_bits`,
    accepted(`${PMD}; client_no_context_takeover`, params(false, true, 13, 15)),
  ],
  [
    "server window option in shared mode",
    { mode: "shared", serverMaxWindowBits: 10 },
    PMD,
    accepted(BOTH, params(true, true, 10, 15)),
  ],
  // Several offers: the first that can be honoured wins; invalid ones are declined (§7).
  [
    "first offer has an unknown parameter",
    DEDICATED,
    `${PMD}; foo, ${PMD}; client_max_window_bits=10`,
    accepted(`${PMD}; client_max_window_bits=10`, params(false, false, 13, 10)),
  ],
  [
    "first offer has an invalid value",
    DEDICATED,
    `${PMD}; server_max_window_bits=7, ${PMD}`,
    accepted(PMD, params(false, false, 13, 15)),
  ],
  [
    "first offer has a duplicate",
    SHARED,
    `${PMD}; client_max_window_bits; client_max_window_bits, ${PMD}`,
    accepted(BOTH, params(true, true, 15, 15)),
  ],
  [
    "other extensions around",
    DEDICATED,
    `x-foo; a=1, ${PMD}; server_max_window_bits=12, x-bar`,
    accepted(`${PMD}; server_max_window_bits=12`, params(false, false, 12, 15)),
  ],
  ["offers across header lines", DEDICATED, [
    `${PMD}; client_no_context_takeover=yes`,
    `${PMD}; server_no_context_takeover`,
  ], accepted(`${PMD}; server_no_context_takeover`, params(true, false, 13, 15))],
  [
    "the first valid offer, not the best",
    DEDICATED,
    `${PMD}, ${PMD}; client_max_window_bits`,
    accepted(PMD, params(false, false, 13, 15)),
  ],
  [
    "every offer declined",
    SHARED,
    `${PMD}; foo, ${PMD}; server_max_window_bits, ${PMD}; client_no_context_takeover=1, ${PMD}; client_max_window_bits=20, ${PMD}; server_no_context_takeover; server_no_context_takeover`,
    {
      kind: "declined",
      reasons: [
        "unknown parameter foo",
        "invalid server_max_window_bits value null",
        "client_no_context_takeover takes no value",
        "invalid client_max_window_bits value 20",
        "duplicate parameter server_no_context_takeover",
      ],
    },
  ],
];

Deno.test("server negotiation", async (t) => {
  for (const [name, options, header, expected] of CASES) {
    await t.step(name, () => {
      assert.deepEqual(negotiateServer(header, resolveServerOptions(options)), expected);
    });
  }
});

Deno.test("server negotiation: a malformed header fails the handshake (RFC 6455 §9.1)", () => {
  const malformed: Header[] = [
    "",
    `${PMD};`,
    `${PMD}, x;`,
    `${PMD}; client_max_window_bits, x=`,
    [`${PMD}`, `${PMD}; a="unterminated`],
    `${PMD}; server_max_window_bits=""`,
  ];
  for (const header of malformed) {
    const result = negotiateServer(header, resolveServerOptions(SHARED));
    assert.equal(result.kind, "malformed", JSON.stringify(header));
  }
});

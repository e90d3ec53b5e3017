/**
 * Client-side negotiation: the offer, every rule for failing on the server's response
 * (RFC 6455 §4.1, §9.1; RFC 7692 §7, §7.1.x), and a round trip of every combination of
 * client and server options through both sides.
 */

import assert from "node:assert/strict";
import {
  acceptResponse,
  buildOffer,
  type ClientNegotiation,
} from "../../../protocol/deflate/client.ts";
import { negotiateServer } from "../../../protocol/deflate/server.ts";
import {
  type DeflateClientOptions,
  type DeflateServerOptions,
  resolveClientOptions,
  resolveServerOptions,
} from "../../../protocol/deflate/options.ts";
import type { DeflateParameters } from "../../../protocol/deflate/params.ts";

const PMD = "permessage-deflate";

Deno.test("client offer", () => {
  const cases: [DeflateClientOptions, string][] = [
    [{}, `${PMD}; client_max_window_bits`],
    [{ clientMaxWindowBits: false }, PMD],
    [{ clientMaxWindowBits: 10 }, `${PMD}; client_max_window_bits=10`],
    [
      {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 9,
        clientMaxWindowBits: 12,
      },
      `${PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12`,
    ],
  ];
  for (const [options, offer] of cases) {
    assert.equal(buildOffer(resolveClientOptions(options)), offer, JSON.stringify(options));
  }
});

function accepted(
  serverNoContextTakeover: boolean,
  clientNoContextTakeover: boolean,
  serverMaxWindowBits: number,
  clientMaxWindowBits: number,
): ClientNegotiation {
  return {
    kind: "accepted",
    params: {
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits,
      clientMaxWindowBits,
    },
  };
}

const FAILED = "failed";
type Header = string | readonly string[] | null;

const CASES: [string, DeflateClientOptions, Header, ClientNegotiation | typeof FAILED][] = [
  ["no header: declined", {}, null, { kind: "declined" }],
  ["no lines: declined", {}, [], { kind: "declined" }],
  ["bare acceptance", {}, PMD, accepted(false, false, 15, 15)],
  [
    "both no-context",
    {},
    `${PMD}; server_no_context_takeover; client_no_context_takeover`,
    accepted(true, true, 15, 15),
  ],
  // §7.1.2.1: a server may answer server_max_window_bits unrequested.
  [
    "unrequested server window",
    {},
    `${PMD}; server_max_window_bits=10`,
    accepted(false, false, 10, 15),
  ],
  [
    "quoted server window",
    {},
    `${PMD}; server_max_window_bits="10"`,
    accepted(false, false, 10, 15),
  ],
  [
    "client window chosen by the server",
    {},
    `${PMD}; client_max_window_bits=9`,
    accepted(false, false, 15, 9),
  ],
  ["client window 8", {}, `${PMD}; client_max_window_bits=8`, accepted(false, false, 15, 8)],
  // Malformed and unexpected extensions.
  ["empty header", {}, "", FAILED],
  ["grammar broken", {}, `${PMD};`, FAILED],
  ["an extension not offered", {}, "x-webkit-deflate-frame", FAILED],
  ["permessage-deflate and another", {}, `${PMD}, x-foo`, FAILED],
  ["permessage-deflate twice", {}, `${PMD}, ${PMD}`, FAILED],
  ["twice across lines", {}, [PMD, PMD], FAILED],
  // §7: parameters not defined for a response, invalid values, duplicates.
  ["unknown parameter", {}, `${PMD}; foo`, FAILED],
  ["client window without a value", {}, `${PMD}; client_max_window_bits`, FAILED],
  ["server window out of range", {}, `${PMD}; server_max_window_bits=16`, FAILED],
  ["server window with a leading zero", {}, `${PMD}; server_max_window_bits=09`, FAILED],
  ["no-context with a value", {}, `${PMD}; server_no_context_takeover=1`, FAILED],
  ["duplicate", {}, `${PMD}; client_no_context_takeover; client_no_context_takeover`, FAILED],
  // §7.1.1.1: a request for server_no_context_takeover is accepted by including it.
  ["requested server no-context, missing", { serverNoContextTakeover: true }, PMD, FAILED],
  [
    "requested server no-context, present",
    { serverNoContextTakeover: true },
    `${PMD}; server_no_context_takeover`,
    accepted(true, false, 15, 15),
  ],
  // §7.1.2.1: a request for server_max_window_bits is accepted by including a value no larger.
  ["requested server window, missing", { serverMaxWindowBits: 10 }, PMD, FAILED],
  [
    "requested server window, equal",
    { serverMaxWindowBits: 10 },
    `${PMD}; server_max_window_bits=10`,
    accepted(false, false, 10, 15),
  ],
  [
    "requested server window, smaller",
    { serverMaxWindowBits: 10 },
    `${PMD}; server_max_window_bits=8`,
    accepted(false, false, 8, 15),
  ],
  [
    "requested server window, larger",
    { serverMaxWindowBits: 10 },
    `${PMD}; server_max_window_bits=11`,
    FAILED,
  ],
  // §7.1.2.2: a client window only if offered, never above the offered value.
  [
    "client window not offered",
    { clientMaxWindowBits: false },
    `${PMD}; client_max_window_bits=10`,
    FAILED,
  ],
  [
    "client window not offered, absent",
    { clientMaxWindowBits: false },
    PMD,
    accepted(false, false, 15, 15),
  ],
  [
    "offered client window, no answer: the hint holds",
    { clientMaxWindowBits: 10 },
    PMD,
    accepted(false, false, 15, 10),
  ],
  [
    "offered client window, smaller answer",
    { clientMaxWindowBits: 10 },
    `${PMD}; client_max_window_bits=9`,
    accepted(false, false, 15, 9),
  ],
  [
    "offered client window, larger answer",
    { clientMaxWindowBits: 10 },
    `${PMD}; client_max_window_bits=11`,
    FAILED,
  ],
  // §7.1.1.2: a client that offered client_no_context_takeover keeps its promise.
  [
    "promised client no-context",
    { clientNoContextTakeover: true },
    PMD,
    accepted(false, true, 15, 15),
  ],
];

Deno.test("client: the server's response", async (t) => {
  for (const [name, options, header, expected] of CASES) {
    await t.step(name, () => {
      const result = acceptResponse(header, resolveClientOptions(options));
      if (expected === FAILED) {
        assert.equal(result.kind, "failed", JSON.stringify(result));
        if (result.kind === "failed") assert.ok(result.reason.length > 0);
      } else {
        assert.deepEqual(result, expected);
      }
    });
  }
});

Deno.test("client and server agree for every combination of options", () => {
  const windows = [8, 9, 10, 11, 12, 13, 14, 15];
  const clients: DeflateClientOptions[] = [];
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const serverMaxWindowBits of [undefined, ...windows]) {
        for (const clientMaxWindowBits of [true, false, ...windows]) {
          clients.push({
            serverNoContextTakeover,
            clientNoContextTakeover,
            serverMaxWindowBits,
            clientMaxWindowBits,
          });
        }
      }
    }
  }
  const servers: DeflateServerOptions[] = [];
  for (const compress of ["shared", "dedicated"] as const) {
    for (const decompress of ["shared", "dedicated"] as const) {
      for (const serverMaxWindowBits of [8, 12, 15]) {
        for (const clientMaxWindowBits of [8, 12, 15]) {
          servers.push({ compress, decompress, serverMaxWindowBits, clientMaxWindowBits });
        }
      }
    }
  }
  let count = 0;
  for (const c of clients) {
    const clientOptions = resolveClientOptions(c);
    const offer = buildOffer(clientOptions);
    for (const s of servers) {
      const serverOptions = resolveServerOptions(s);
      const what = `${offer} / ${JSON.stringify(s)}`;
      const server = negotiateServer(offer, serverOptions);
      assert.equal(server.kind, "accepted", what);
      if (server.kind !== "accepted") continue;
      const client = acceptResponse(server.response, clientOptions);
      assert.equal(client.kind, "accepted", `${what} -> ${server.response}`);
      if (client.kind !== "accepted") continue;
      const sp: DeflateParameters = server.params;
      const cp: DeflateParameters = client.params;
      // Context takeover: both ends see the same answer.
      assert.equal(sp.serverNoContextTakeover, cp.serverNoContextTakeover, what);
      assert.equal(sp.clientNoContextTakeover, cp.clientNoContextTakeover, what);
      // What each side compresses with fits what the other decompresses with.
      assert.ok(sp.serverMaxWindowBits <= cp.serverMaxWindowBits, what);
      assert.ok(cp.clientMaxWindowBits <= sp.clientMaxWindowBits, what);
      // Requests and promises are kept; the server's limits hold where it may set them.
      if (c.serverNoContextTakeover) assert.ok(sp.serverNoContextTakeover, what);
      if (c.clientNoContextTakeover) assert.ok(sp.clientNoContextTakeover, what);
      if (c.serverMaxWindowBits !== undefined) {
        assert.ok(sp.serverMaxWindowBits <= c.serverMaxWindowBits, what);
      }
      assert.ok(sp.serverMaxWindowBits <= serverOptions.serverMaxWindowBits, what);
      if (s.compress === "shared") assert.ok(sp.serverNoContextTakeover, what);
      if (s.decompress === "shared") assert.ok(sp.clientNoContextTakeover, what);
      if (c.clientMaxWindowBits !== false) {
        assert.ok(cp.clientMaxWindowBits <= serverOptions.clientMaxWindowBits, what);
      }
      count++;
    }
  }
  assert.equal(count, clients.length * servers.length);
});

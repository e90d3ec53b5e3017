/**
 * Deflate sessions end to end: a server and a client session built from a real
 * negotiation (protocol/deflate) exchange messages both ways in every mode, whole and in
 * fragments, with context takeover across messages; a broadcast is compressed once for
 * shared sessions and reused, with a reset, by a dedicated one; streams per connection and
 * their release on every path.
 */

import assert from "node:assert/strict";
import { DeflateContext, SEND_UNCOMPRESSED } from "../../deflate/context.ts";
import { DeflateSession } from "../../deflate/session.ts";
import { liveStreams } from "../../deflate/z_stream.ts";
import { negotiateServer } from "../../protocol/deflate/server.ts";
import { acceptResponse, buildOffer } from "../../protocol/deflate/client.ts";
import {
  type DeflateClientOptions,
  type DeflateServerOptions,
  resolveClientOptions,
  resolveServerOptions,
} from "../../protocol/deflate/options.ts";
import { FdwsError } from "../../errors.ts";
import { chunkings } from "../fixtures/chunking.ts";
import { filled, toHex, utf8 } from "../fixtures/bytes.ts";

interface Pair {
  server: DeflateSession;
  client: DeflateSession;
  serverContext: DeflateContext;
  clientContext: DeflateContext;
  free(): void;
}

function pair(serverOptions: DeflateServerOptions, clientOptions: DeflateClientOptions): Pair {
  const s = resolveServerOptions(serverOptions);
  const c = resolveClientOptions(clientOptions);
  const negotiated = negotiateServer(buildOffer(c), s);
  if (negotiated.kind !== "accepted") throw new Error("not accepted");
  const answered = acceptResponse(negotiated.response, c);
  if (answered.kind !== "accepted") throw new Error("response refused");
  const serverContext = new DeflateContext({ memLevel: s.memLevel, threshold: s.threshold });
  const clientContext = new DeflateContext({ memLevel: c.memLevel, threshold: c.threshold });
  const server = new DeflateSession("server", negotiated.params, serverContext);
  const client = new DeflateSession("client", answered.params, clientContext);
  return {
    server,
    client,
    serverContext,
    clientContext,
    free() {
      server.free();
      client.free();
      serverContext.free();
      clientContext.free();
    },
  };
}

/** Sends `m` from one session to the other; returns what arrived. */
function send(from: DeflateSession, to: DeflateSession, m: Uint8Array, seed: number): Uint8Array {
  const n = from.compress(m);
  if (n === SEND_UNCOMPRESSED) return m;
  const payload = from.output.slice(0, n);
  const sizes = chunkings(n, seed)[seed % 8].sizes;
  let offset = 0;
  if (sizes.length === 0) {
    assert.equal(to.inflate(payload, 0, 0, true), "done");
  } else {
    sizes.forEach((size, i) => {
      const result = to.inflate(payload, offset, offset + size, i === sizes.length - 1);
      assert.equal(result, i === sizes.length - 1 ? "done" : "more");
      offset += size;
    });
  }
  return to.message.slice(0, to.messageLength);
}

function conversation(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 30; i++) {
    out.push(
      utf8(JSON.stringify({ type: "chat", seq: i, user: `user${i % 3}`, text: "hello again" })),
    );
  }
  out.push(new Uint8Array(0), filled(5000, 1), utf8("z".repeat(100_000)), utf8("tail"));
  return out;
}

const MODES: [string, DeflateServerOptions, DeflateClientOptions][] = [
  ["shared both ways", { mode: "shared", threshold: 0 }, { threshold: 0 }],
  ["dedicated both ways", { mode: "dedicated", threshold: 0 }, { threshold: 0 }],
  ["dedicated, smallest windows", {
    mode: "dedicated",
    serverMaxWindowBits: 8,
    clientMaxWindowBits: 8,
    memLevel: 1,
    threshold: 0,
  }, { threshold: 0 }],
  ["client asks for a small server window", { mode: "shared", threshold: 0 }, {
    serverMaxWindowBits: 9,
    clientMaxWindowBits: 10,
    threshold: 0,
  }],
  ["mixed", { compress: "dedicated", decompress: "shared", threshold: 64 }, {
    clientNoContextTakeover: true,
    threshold: 64,
  }],
];

Deno.test("sessions: messages both ways in every mode", async (t) => {
  for (const [name, serverOptions, clientOptions] of MODES) {
    await t.step(name, () => {
      const before = liveStreams();
      const p = pair(serverOptions, clientOptions);
      conversation().forEach((m, i) => {
        assert.deepEqual(send(p.server, p.client, m, i), m, `server -> client ${i}`);
        assert.deepEqual(send(p.client, p.server, m, i + 100), m, `client -> server ${i}`);
      });
      assert.equal(p.server.inMessage || p.client.inMessage, false);
      p.free();
      assert.equal(liveStreams(), before, "every stream freed");
    });
  }
});

Deno.test("sessions: RFC 7692 §7.2.3.2 bytes with context takeover, §7.2.3.1 without", () => {
  const dedicated = pair({ mode: "dedicated", threshold: 0 }, { threshold: 0 });
  const hello = utf8("Hello");
  const first = dedicated.server.compress(hello);
  assert.equal(toHex(dedicated.server.output.subarray(0, first)), "f2 48 cd c9 c9 07 00");
  const second = dedicated.server.compress(hello);
  assert.equal(toHex(dedicated.server.output.subarray(0, second)), "f2 00 11 00 00");
  dedicated.free();
  const shared = pair({ mode: "shared", threshold: 0 }, { threshold: 0 });
  // "Hello" would not shrink alone: the shared compressor sends it uncompressed.
  assert.equal(shared.server.compress(hello), SEND_UNCOMPRESSED);
  shared.free();
});

Deno.test("sessions: memory per connection", async (t) => {
  await t.step("shared both ways: no zlib stream of its own", () => {
    const context = new DeflateContext();
    const before = liveStreams();
    const sessions = Array.from({ length: 50 }, () =>
      new DeflateSession("server", {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 15,
      }, context));
    const m = utf8("a fairly compressible message, a fairly compressible message");
    for (const s of sessions) {
      const n = s.compress(m);
      const payload = s.output.slice(0, n);
      assert.equal(s.inflate(payload, 0, payload.length, true), "done");
      assert.equal(s.allocated, false);
    }
    // One shared compressor and one lent-and-returned decompressor for all fifty.
    assert.equal(liveStreams(), before + 2);
    sessions.forEach((s) => s.free());
    context.free();
    assert.equal(liveStreams(), before);
  });

  await t.step("dedicated: streams appear with the first message of each direction", () => {
    const context = new DeflateContext();
    const before = liveStreams();
    const s = new DeflateSession("server", {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 12,
      clientMaxWindowBits: 12,
    }, context);
    assert.equal(s.allocated, false);
    assert.equal(s.sharedWindowBits, -1);
    s.compress(utf8("x".repeat(100)));
    assert.equal(liveStreams(), before + 1);
    s.inflate(new Uint8Array([0x00]), 0, 1, true);
    assert.equal(liveStreams(), before + 2);
    s.free();
    s.free();
    assert.equal(liveStreams(), before);
    assert.throws(
      () => s.compress(utf8("x")),
      (e: unknown) => e instanceof FdwsError && e.code === "ZLIB_STREAM_ENDED",
    );
    context.free();
  });

  await t.step("free mid-message gives the lent decompressor back", () => {
    const context = new DeflateContext();
    const s = new DeflateSession("client", {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    }, context);
    const hello = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert.equal(s.inflate(hello, 0, 3, false), "more");
    assert.equal(s.inMessage, true);
    assert.equal(context.lent, 1);
    s.free();
    assert.equal(context.lent, 0);
    context.free();
  });
});

Deno.test("sessions: a broadcast compressed once", () => {
  const context = new DeflateContext();
  const clientContext = new DeflateContext();
  const sharedParams = {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  const dedicatedParams = { ...sharedParams, serverNoContextTakeover: false };
  const servers = [
    new DeflateSession("server", sharedParams, context),
    new DeflateSession("server", sharedParams, context),
    new DeflateSession("server", dedicatedParams, context),
  ];
  const clients = [
    new DeflateSession("client", sharedParams, clientContext),
    new DeflateSession("client", sharedParams, clientContext),
    new DeflateSession("client", dedicatedParams, clientContext),
  ];
  assert.deepEqual(servers.map((s) => s.sharedWindowBits), [15, 15, -1]);
  const dedicated = servers[2];
  const note = utf8(JSON.stringify({ note: "context for the dedicated connection ".repeat(4) }));
  // The dedicated connection first builds up context of its own.
  assert.deepEqual(send(dedicated, clients[2], note, 1), note);

  const broadcast = utf8(JSON.stringify({ topic: "news", body: "compressed once ".repeat(20) }));
  const n = context.compress(broadcast, 0, broadcast.length, 15);
  assert.ok(n > 0);
  const framed = context.output.slice(0, n); // framed once with RSV1, sent to all three
  clients.forEach((c, i) => {
    assert.equal(c.inflate(framed, 0, framed.length, true), "done", `client ${i}`);
    assert.deepEqual(c.message.slice(0, c.messageLength), broadcast);
  });
  // The dedicated compressor never saw the broadcast: reset it before its next message.
  dedicated.resetCompression();
  assert.deepEqual(send(dedicated, clients[2], note, 2), note);
  assert.deepEqual(send(dedicated, clients[2], note, 3), note);
  [...servers, ...clients].forEach((s) => s.free());
  context.free();
  clientContext.free();
});

Deno.test("sessions: limits and invalid data", () => {
  const context = new DeflateContext({ maxMessageSize: 1000 });
  const s = new DeflateSession("server", {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  }, context);
  const big = utf8("y".repeat(1001));
  const sender = new DeflateContext();
  const n = sender.compress(big, 0, big.length, 15);
  const payload = sender.output.slice(0, n);
  assert.equal(s.inflate(payload, 0, payload.length, true), "too-big");
  assert.equal(context.lent, 0);
  assert.equal(s.inflate(new Uint8Array([0xff, 0xff]), 0, 2, true), "invalid");
  assert.equal(s.inflate(new Uint8Array([0x00]), 0, 1, true), "done");
  assert.equal(s.messageLength, 0);
  s.free();
  context.free();
  sender.free();
});

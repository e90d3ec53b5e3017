/**
 * permessage-deflate end to end: negotiated with npm:ws, Python's websockets (compression
 * on by default) and our own client; the frame path byte by byte from a raw client (RSV1
 * only on a compressed message's first frame, control frames never compressed, fragments,
 * invalid data 1007, a decompression bomb 1009); broadcasts compressed once and received
 * by compressing and plain clients alike; zlib streams released on every way a
 * connection ends.
 */

import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { connect, type DeflateServerOptions, type Server, type WebSocket } from "../../mod.ts";
import { liveStreams } from "../../deflate/z_stream.ts";
import { PYTHON_WEBSOCKETS, requireTool } from "../deps/tools.ts";
import { concat } from "../fixtures/bytes.ts";
import { delay, indexOfHeadEnd, rawFrame, runToEnd, waitFor, within } from "../fixtures/harness.ts";
import { NodeWebSocket, serverTest, withServer } from "../fixtures/manager/helpers.ts";

const CHAT = JSON.stringify({
  type: "message",
  room: "general",
  user: "ada",
  text: "hello hello hello, the quick brown fox jumps over the lazy dog ".repeat(4),
});

/** A compressed payload as a sender makes it (RFC 7692 §7.2.1: the 00 00 ff ff tail cut). */
function compressed(text: string | Uint8Array): Uint8Array {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const out = new Uint8Array(deflateRawSync(bytes, { finishFlush: 2 /* Z_SYNC_FLUSH */ }));
  return out.subarray(0, out.length - 4);
}

/** A raw socket that negotiated permessage-deflate (no context takeover both ways). */
async function rawDeflate(port: number): Promise<{ conn: Deno.Conn; read(): Promise<Uint8Array> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; ` +
      `server_no_context_takeover\r\n\r\n`,
  ));
  let buf: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(65536);
  const fill = async (): Promise<boolean> => {
    const n = await within(conn.read(chunk), 5_000, "read");
    if (n === null) return false;
    buf = concat(buf, chunk.subarray(0, n));
    return true;
  };
  while (indexOfHeadEnd(buf) < 0) if (!await fill()) throw new Error("closed in handshake");
  const end = indexOfHeadEnd(buf) + 4;
  const head = new TextDecoder().decode(buf.subarray(0, end));
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.match(head, /Sec-WebSocket-Extensions: permessage-deflate/i);
  buf = buf.slice(end);
  return {
    conn,
    // Everything until the server closes.
    async read(): Promise<Uint8Array> {
      while (await fill().catch(() => false));
      return buf;
    },
  };
}

/** The close code in the first close frame of `bytes` (unmasked server frames). */
function closeCode(bytes: Uint8Array): number {
  let p = 0;
  while (p + 2 <= bytes.length) {
    const op = bytes[p] & 0x0f;
    let len = bytes[p + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      len = (bytes[p + 2] << 8) | bytes[p + 3];
      h = 4;
    }
    if (op === 0x8) return (bytes[p + h] << 8) | bytes[p + h + 1];
    p += h + len;
  }
  return -1;
}

const MODES: DeflateServerOptions[] = [{ mode: "shared" }, { mode: "dedicated" }];

serverTest("npm:ws with perMessageDeflate: negotiated, echoed, in both modes", async (poller) => {
  for (const options of MODES) {
    await withServer({
      poller,
      perMessageDeflate: { ...options, threshold: 16 },
      websocket: { message: (ws, data) => void ws.send(data) },
    }, async (s) => {
      const ws = new NodeWebSocket(`ws://127.0.0.1:${s.port}/`, {
        perMessageDeflate: { threshold: 0 },
      } as unknown as { headers?: Record<string, string> });
      const got: string[] = [];
      const done = Promise.withResolvers<void>();
      ws.on("message", (d) => {
        got.push(new TextDecoder().decode(d as Uint8Array));
        if (got.length === 4) done.resolve();
      });
      await new Promise<void>((resolve) => ws.on("open", () => resolve()));
      const extensions = (ws as unknown as { extensions: string }).extensions;
      assert.match(extensions, /permessage-deflate/);
      const big = "x".repeat(200_000);
      for (const m of [CHAT, "tiny", CHAT, big]) ws.send(m);
      await within(done.promise, 5_000, "echoes");
      assert.deepEqual(got, [CHAT, "tiny", CHAT, big]);
      // Chat-like JSON shrank on the wire.
      assert.ok(s.manager.stats.bytesIn < CHAT.length * 2 + 400, `${s.manager.stats.bytesIn}`);
      ws.terminate();
      await new Promise<void>((resolve) => ws.on("close", () => resolve()));
    });
  }
});

Deno.test("Python websockets (compression on by default) through permessage-deflate", async () => {
  const python = await requireTool(PYTHON_WEBSOCKETS);
  await withServer({
    perMessageDeflate: true,
    websocket: { message: (ws, data) => void ws.send(`${ws.extensions !== ""}:${data}`) },
  }, async (s) => {
    const py = await runToEnd(python, [
      "-c",
      `import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:${s.port}/") as ws:
        for m in [${JSON.stringify(CHAT)}, "b"]:
            await ws.send(m)
            print(await ws.recv())
asyncio.run(main())`,
    ], 20_000);
    assert.deepEqual(py.stdout.trim().split("\n"), [`true:${CHAT}`, "true:b"], py.stderr);
  });
});

serverTest(
  "our client: negotiation, a broadcast compressed once, plain and deflate clients",
  async (poller) => {
    let server: Server | null = null;
    await withServer({
      poller,
      perMessageDeflate: true,
      websocket: { message: (_ws, data) => void server!.manager.broadcast(data as string) },
    }, async (s) => {
      server = s;
      const url = `ws://127.0.0.1:${s.port}/`;
      const zipped: WebSocket[] = [];
      for (let i = 0; i < 3; i++) zipped.push(await connect(url, { perMessageDeflate: true }));
      const plain = await connect(url);
      assert.match(zipped[0].extensions, /^permessage-deflate/);
      assert.equal(plain.extensions, "");
      const inboxes = [...zipped, plain].map((ws) => {
        const got: string[] = [];
        ws.onmessage = (ev) => got.push(ev.data as string);
        return got;
      });
      const bytesOut = s.manager.stats.bytesOut;
      for (let i = 0; i < 20; i++) zipped[0].send(`${CHAT} #${i}`);
      await waitFor(() => inboxes.every((got) => got.length === 20), 5_000, "broadcasts");
      const expected = Array.from({ length: 20 }, (_, i) => `${CHAT} #${i}`);
      for (const got of inboxes) assert.deepEqual(got, expected);
      // 4 copies of 20 messages, 3 of them compressed: well under 4 plain copies.
      const sent = s.manager.stats.bytesOut - bytesOut;
      const plainBytes = 20 * 4 * CHAT.length;
      assert.ok(sent < plainBytes * 0.6, `${sent} bytes for ${plainBytes} plain`);
      for (const ws of [...zipped, plain]) ws.close();
    });
  },
);

serverTest("compress: false sends a message plain on a deflate connection", async (poller) => {
  await withServer({
    poller,
    perMessageDeflate: true,
    websocket: {
      open: (ws) => ws.subscribe("t"),
      message: (ws, data) => {
        const at = (data as string).indexOf(":");
        const how = (data as string).slice(0, at);
        const text = (data as string).slice(at + 1);
        const payload = text.repeat(20);
        if (how === "send") void ws.send(payload, { compress: false });
        else if (how === "publish") ws.publish("t", payload, { compress: false });
        else if (how === "broadcast") ws.manager?.broadcast(payload, { compress: false });
        else void ws.send(payload);
      },
    },
  }, async (s) => {
    const url = `ws://127.0.0.1:${s.port}/`;
    const sender = await connect(url, { perMessageDeflate: true });
    const peer = await connect(url, { perMessageDeflate: true });
    await waitFor(() => s.manager.subscriberCount("t") === 2, 5_000, "subscribed");
    const got: string[] = [];
    sender.onmessage = peer.onmessage = (ev) => got.push(ev.data as string);
    // What goes out for each way of sending; the payload compresses to a few percent.
    const out = async (how: string, receivers: number): Promise<number> => {
      const before = s.manager.stats.bytesOut;
      const n = got.length;
      sender.send(`${how}:${CHAT}`);
      await waitFor(() => got.length === n + receivers, 5_000, how);
      assert.equal(got.at(-1), CHAT.repeat(20));
      return (s.manager.stats.bytesOut - before) / receivers;
    };
    const plain = CHAT.length * 20;
    assert.ok(await out("zip", 1) < plain / 5, "compressed by default");
    assert.ok(await out("send", 1) >= plain, "send");
    assert.ok(await out("publish", 1) >= plain, "publish (not to the sender)");
    assert.ok(await out("broadcast", 2) >= plain, "broadcast");
    sender.close();
    peer.close();
  });
});

serverTest("the frame path: RSV1 rules, fragments, invalid data and a bomb", async (poller) => {
  const got: string[] = [];
  await withServer({
    poller,
    perMessageDeflate: true,
    maxMessageSize: 1024 * 1024,
    websocket: { message: (_ws, data) => void got.push(typeof data === "string" ? data : "bin") },
  }, async (s) => {
    // A compressed text message in one frame, then fragmented (RSV1 on the first only),
    // with a ping between the fragments (control frames are never compressed).
    const ok = await rawDeflate(s.port);
    const z = compressed(CHAT);
    await ok.conn.write(rawFrame({ opcode: 1, payload: z, rsv: 4 }));
    await ok.conn.write(concat(
      rawFrame({ opcode: 1, payload: z.subarray(0, 10), rsv: 4, fin: false }),
      rawFrame({ opcode: 9, payload: "p" }),
      rawFrame({ opcode: 0, payload: z.subarray(10) }),
    ));
    await waitFor(() => got.length === 2, 2_000, "two messages");
    assert.deepEqual(got, [CHAT, CHAT]);
    ok.conn.close();

    const cases: [string, Uint8Array, number][] = [
      ["RSV1 on a ping", rawFrame({ opcode: 9, payload: "x", rsv: 4 }), 1002],
      [
        "RSV1 on a continuation",
        concat(
          rawFrame({ opcode: 1, payload: z.subarray(0, 10), rsv: 4, fin: false }),
          rawFrame({ opcode: 0, payload: z.subarray(10), rsv: 4 }),
        ),
        1002,
      ],
      ["RSV2", rawFrame({ opcode: 1, payload: "x", rsv: 2 }), 1002],
      ["invalid compressed data", rawFrame({ opcode: 2, payload: "\xff\xff\xff", rsv: 4 }), 1007],
      // 64 MiB of zeros in about 64 KiB: past maxMessageSize once inflated.
      [
        "a decompression bomb",
        rawFrame({ opcode: 2, payload: compressed(new Uint8Array(64 << 20)), rsv: 4 }),
        1009,
      ],
    ];
    for (const [what, bytes, code] of cases) {
      const c = await rawDeflate(s.port);
      await c.conn.write(bytes);
      assert.equal(closeCode(await c.read()), code, what);
      c.conn.close();
    }
    assert.equal(got.length, 2);
  });
});

serverTest(
  "compressed messages are inflated over several turns: intact, and a bomb does not hold the others",
  async (poller) => {
    const events: string[] = [];
    let big: Uint8Array | null = null;
    await withServer({
      poller,
      perMessageDeflate: true,
      maxMessageSize: 64 << 20,
      websocket: {
        message: (_ws, data) => {
          if (typeof data === "string") events.push(data);
          else {
            big = data as Uint8Array;
            events.push("big");
          }
        },
        close: (_ws, code) => void events.push(`closed ${code}`),
      },
    }, async (s) => {
      // 24 MiB that deflate shrinks about a hundredfold, sent as two masked fragments with a
      // ping between them: the inflater gets it 2 KiB at a time, across many turns.
      const message = new Uint8Array(24 << 20);
      for (let i = 0; i < message.length; i++) message[i] = (i * 7 + (i >> 12)) & 0xff;
      const z = compressed(message);
      const a = await rawDeflate(s.port);
      const b = await rawDeflate(s.port);
      const half = z.length >> 1;
      await a.conn.write(concat(
        rawFrame({ opcode: 2, payload: z.subarray(0, half), rsv: 4, fin: false }),
        rawFrame({ opcode: 9, payload: "p" }),
        rawFrame({ opcode: 0, payload: z.subarray(half) }),
      ));
      await b.conn.write(rawFrame({ opcode: 1, payload: compressed("small"), rsv: 4 }));
      await waitFor(() => events.length === 2, 20_000, "both messages");
      assert.deepEqual(events.toSorted(), ["big", "small"]);
      assert.equal(big!.length, message.length);
      assert.ok(big!.every((v, i) => v === message[i]), "the big message arrived intact");

      // A bomb (64 MiB of zeros inflated before the 1009, about 0.6 s of zlib here) does not
      // hold the others: a message sent 50 ms into it is delivered before the refusal. The
      // client runs on the server's thread, so this also needs the busy loop to let a timer
      // (the delay) fire: it used to starve them for as long as it stayed busy.
      events.length = 0;
      const bomb = await rawDeflate(s.port);
      await bomb.conn.write(
        rawFrame({ opcode: 2, payload: compressed(new Uint8Array(80 << 20)), rsv: 4 }),
      );
      await delay(50);
      await b.conn.write(rawFrame({ opcode: 1, payload: compressed("small again"), rsv: 4 }));
      assert.equal(closeCode(await bomb.read()), 1009);
      await waitFor(() => events.length === 2, 5_000, "both events");
      // (1006 on this side: the raw client never answers the server's 1009 close.)
      assert.deepEqual(events, ["small again", "closed 1006"]);

      // Nor do many small compressed frames that arrive whole in one read: 40 messages of
      // 1 MiB of zeros, about 1 KiB each on the wire, count against the same budget.
      events.length = 0;
      const many = await rawDeflate(s.port);
      const one = rawFrame({ opcode: 2, payload: compressed(new Uint8Array(1 << 20)), rsv: 4 });
      await many.conn.write(concat(...Array.from({ length: 40 }, () => one)));
      await delay(50);
      await b.conn.write(rawFrame({ opcode: 1, payload: compressed("small last"), rsv: 4 }));
      await waitFor(() => events.length === 41, 10_000, "all 41 messages");
      assert.ok(events.indexOf("small last") < 40, `delivered at ${events.indexOf("small last")}`);
      for (const c of [a, b, bomb, many]) c.conn.close();
    });
  },
);

Deno.test("compressed messages in progress count against maxIncompleteMessageBytes", async () => {
  const sizes: number[] = [];
  await withServer({
    perMessageDeflate: true,
    maxMessageSize: 1 << 20,
    maxIncompleteMessageBytes: 256 << 10,
    websocket: { message: (_ws, data) => void sizes.push((data as Uint8Array).length) },
  }, async (s) => {
    // 200 KiB of zeros in a few hundred bytes: the first fragment inflates to nearly all of it.
    const z = compressed(new Uint8Array(200 << 10));
    const first = await rawDeflate(s.port);
    const second = await rawDeflate(s.port);
    await first.conn.write(
      rawFrame({ opcode: 2, payload: z.subarray(0, z.length - 2), rsv: 4, fin: false }),
    );
    await delay(50);
    // Together past 256 KiB: the second connection is told to try again later.
    await second.conn.write(
      rawFrame({ opcode: 2, payload: z.subarray(0, z.length - 2), rsv: 4, fin: false }),
    );
    assert.equal(closeCode(await second.read()), 1013);
    second.conn.close();
    // The first is unharmed and completes its message.
    await first.conn.write(rawFrame({ opcode: 0, payload: z.subarray(z.length - 2) }));
    await waitFor(() => sizes.length === 1, 5_000, "the first message");
    assert.deepEqual(sizes, [200 << 10]);
    first.conn.close();
  });
});

Deno.test("RSV1 without the extension negotiated fails with 1002", async () => {
  await withServer({ perMessageDeflate: false }, async (s, scope) => {
    const raw = await scope.raw(s.port);
    await raw.write(rawFrame({ opcode: 1, payload: compressed("hello"), rsv: 4 }));
    const f = await raw.readFrame();
    assert.equal(f?.opcode, 0x8);
    assert.equal((f!.payload[0] << 8) | f!.payload[1], 1002);
  });
});

Deno.test("zlib streams are released on every way a connection ends", async () => {
  const before = liveStreams();
  await withServer({
    perMessageDeflate: { mode: "dedicated", threshold: 0 },
    websocket: {
      message: (ws, data) => {
        if (data === "fail") ws.terminate();
        else void ws.send(data);
      },
    },
  }, async (s) => {
    const url = `ws://127.0.0.1:${s.port}/`;
    const ends: Array<(ws: WebSocket) => void> = [
      (ws) => ws.close(1000), // clean close
      (ws) => void ws.send("fail"), // server terminates
      (ws) => ws.terminate(), // client terminates
    ];
    for (const end of ends) {
      const ws = await connect(url, { perMessageDeflate: { clientNoContextTakeover: false } });
      const echoed = Promise.withResolvers<void>();
      ws.onmessage = () => echoed.resolve();
      ws.send(CHAT);
      await within(echoed.promise, 5_000, "echo");
      assert.ok(liveStreams() > before, "dedicated streams were used");
      const closed = Promise.withResolvers<void>();
      ws.onclose = () => closed.resolve();
      end(ws);
      await within(closed.promise, 5_000, "closed");
      await waitFor(() => s.manager.size === 0, 5_000, "server side closed");
      assert.equal(liveStreams(), before);
    }
    // Streams of connections still open when the server shuts down.
    const ws = await connect(url, { perMessageDeflate: true });
    const echoed = Promise.withResolvers<void>();
    ws.onmessage = () => echoed.resolve();
    ws.send(CHAT);
    await within(echoed.promise, 5_000, "echo");
  });
  await waitFor(() => liveStreams() === before, 5_000, "all released");
});

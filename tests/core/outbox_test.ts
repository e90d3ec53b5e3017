/**
 * The outbox: a close frame that answers the peer's close does not wait behind data the
 * peer is not reading (it goes right after the frame in progress), while data the peer does
 * read still goes out before it.
 */
import assert from "node:assert/strict";
import { serve } from "../../mod.ts";
import { Outbox, type OutboxConnection } from "../../core/outbox.ts";
import { plainTransport } from "../../transport/plain.ts";
import {
  closePayload,
  indexOfHeadEnd,
  parseFrame,
  POLLERS,
  rawFrame,
  stepPerPoller,
  waitFor,
  type WireFrame,
  within,
} from "../fixtures/harness.ts";

const UPGRADE =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** A client connection that reads frames off the wire itself. */
class FrameReader {
  #buf = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(1 << 20);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  async head(): Promise<string> {
    while (indexOfHeadEnd(this.#buf) < 0) {
      if (!(await this.#more())) throw new Error("closed before the response head");
    }
    const end = indexOfHeadEnd(this.#buf) + 4;
    const text = new TextDecoder().decode(this.#buf.subarray(0, end));
    this.#buf = this.#buf.slice(end);
    return text.slice(0, text.indexOf("\r\n"));
  }

  /** The next whole frame, or null at EOF. */
  async frame(): Promise<WireFrame | null> {
    for (;;) {
      const f = parseFrame(this.#buf);
      if (f !== null) {
        this.#buf = this.#buf.slice(f.size);
        return f.frame;
      }
      if (!(await this.#more())) return null;
    }
  }
}

function fakeConnection(): OutboxConnection & { closeTail: number } {
  return {
    fd: -1,
    transport: plainTransport,
    rs: 0,
    re: 0,
    q: null,
    qHead: 0,
    qBytes: 0,
    qTail: null,
    dirty: false,
    blocked: true,
    partial: false,
    closeTail: 0,
  };
}

/** An outbox whose owner ignores its events (the connections here are never written). */
function quietOutbox(): Outbox<OutboxConnection> {
  return new Outbox<OutboxConnection>({
    blocked() {},
    drained() {},
    failed() {},
    wrote() {},
  });
}

Deno.test("outbox: expedite keeps the frame in progress and the close frame, drops the rest", () => {
  const outbox = quietOutbox();
  const close = Uint8Array.of(0x88, 0x02, 0x03, 0xe8);
  const inProgress = new Uint8Array(100).fill(1);
  const queued = new Uint8Array(1000).fill(2);
  const lastWithClose = new Uint8Array(50 + close.length).fill(3);
  lastWithClose.set(close, 50);

  // A frame half written: it stays, and the close follows it.
  const a = fakeConnection();
  a.q = [inProgress, queued, lastWithClose];
  a.qHead = 40;
  a.partial = true;
  a.qBytes = 60 + 1000 + lastWithClose.length;
  assert.equal(outbox.expedite(a, close.length), 1000 + 50);
  assert.equal(a.q!.length, 2);
  assert.equal(a.q![0], inProgress);
  assert.equal(a.qHead, 40);
  assert.deepEqual(a.q![1], close);
  assert.equal(a.qBytes, 60 + close.length);

  // Nothing of the queue written yet: only the close is left.
  const b = fakeConnection();
  b.q = [queued, lastWithClose];
  b.qBytes = 1000 + lastWithClose.length;
  assert.equal(outbox.expedite(b, close.length), 1000 + 50);
  assert.deepEqual(b.q, [close]);
  assert.equal(b.qBytes, close.length);

  // The close frame split across two chunks (a write cut the range it was in).
  const c = fakeConnection();
  c.q = [queued, Uint8Array.of(7, 7, 0x88, 0x02), Uint8Array.of(0x03, 0xe8)];
  c.qBytes = 1000 + 4 + 2;
  assert.equal(outbox.expedite(c, close.length), 1000 + 2);
  assert.deepEqual(c.q, [close]);

  // Only the close (or the frame in progress and the close) is queued: nothing to drop.
  const d = fakeConnection();
  d.q = [inProgress, close];
  d.qHead = 10;
  d.partial = true;
  d.qBytes = 90 + close.length;
  assert.equal(outbox.expedite(d, close.length), 0);
  assert.equal(d.q!.length, 2);
});

Deno.test("outbox: a waiting connection gathers its copies in a few buffers, in order", () => {
  const outbox = quietOutbox();
  const waiting = fakeConnection(); // blocked: every tick's bytes are copied into its queue
  const frames: Uint8Array[] = [];
  for (let tick = 0; tick < 500; tick++) {
    const payload = new Uint8Array(100).fill(tick & 0xff);
    outbox.encode(0x2, payload);
    outbox.pushEncoded(waiting);
    outbox.releaseEncoded();
    if (tick % 7 === 3) outbox.pushChunk(waiting, new Uint8Array(70_000).fill(9)); // shared
    outbox.flush();
    frames.push(Uint8Array.of(0x82, 100), payload);
    if (tick % 7 === 3) frames.push(new Uint8Array(70_000).fill(9));
  }
  const total = frames.reduce((n, f) => n + f.length, 0);
  assert.equal(waiting.qBytes, total);
  const queued = new Uint8Array(total);
  let at = 0;
  for (const chunk of waiting.q!) {
    queued.set(chunk, at);
    at += chunk.length;
  }
  const expected = new Uint8Array(total);
  at = 0;
  for (const f of frames) {
    expected.set(f, at);
    at += f.length;
  }
  assert.deepEqual(queued, expected);
  // 500 ticks of copies and 72 shared chunks: the copies sit in a couple of buffers between
  // two shared chunks, not in one buffer per tick.
  assert.ok(waiting.q!.length < 72 * 3 + 4, `${waiting.q!.length} chunks`);
  outbox.discard(waiting);
  assert.equal(waiting.qTail, null);

  // Copies only: 500 ticks of 102 bytes in a handful of buffers (the first of its own size,
  // then tails doubling from 4 KiB).
  const plain = fakeConnection();
  for (let tick = 0; tick < 500; tick++) {
    outbox.encode(0x2, new Uint8Array(100).fill(tick & 0xff));
    outbox.pushEncoded(plain);
    outbox.releaseEncoded();
    outbox.flush();
  }
  assert.equal(plain.qBytes, 500 * 102);
  assert.ok(plain.q!.length <= 6, `${plain.q!.length} chunks`);
  assert.equal(plain.q![plain.q!.length - 1].at(-1), 499 & 0xff);
  outbox.discard(plain);
});

Deno.test("the answer to a close does not wait behind data the peer does not read", async (t) => {
  // 48 MiB queued for a client that does not read: as 48 messages, and as one message
  // (sent in fragments, so the close can go between two of them).
  for (const [count, size] of [[48, 1 << 20], [1, 48 << 20]]) {
    await t.step(`${count} x ${size >> 20} MiB`, async (t) => {
      await stepPerPoller(t, POLLERS, async (poller) => {
        const closes: [number, string][] = [];
        const server = serve({
          hostname: "127.0.0.1",
          port: 0,
          poller,
          pingInterval: 0,
          idleTimeout: 0,
          backpressurePolicy: "buffer",
          websocket: {
            open(ws) {
              const payload = new Uint8Array(size).fill(0x5a);
              for (let i = 0; i < count; i++) ws.send(payload);
            },
            close: (_ws, code, reason) => void closes.push([code, reason]),
          },
        });
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        try {
          const reader = new FrameReader(conn);
          await conn.write(new TextEncoder().encode(UPGRADE));
          assert.equal(
            await within(reader.head(), 5000, "101"),
            "HTTP/1.1 101 Switching Protocols",
          );
          // The server's writes block: the kernel buffers are full, most is still queued.
          await waitFor(
            () => {
              const ws = [...server.manager][0];
              return ws !== undefined && ws.bufferedAmount > count * size / 2;
            },
            5000,
            "a blocked queue",
          );
          await conn.write(rawFrame({ opcode: 0x8, payload: closePayload(1000) }));
          let dataBytes = 0;
          let inMessage = false;
          let answer: WireFrame | null = null;
          for (;;) {
            const f = await within(reader.frame(), 10_000, "a frame");
            if (f === null) break;
            if (f.opcode === 0x8) {
              answer = f;
              break;
            }
            // Whole frames in a valid sequence: a message, or its continuations.
            assert.equal(f.opcode, inMessage ? 0x0 : 0x2);
            inMessage = !f.fin;
            dataBytes += f.payload.length;
          }
          assert.ok(answer !== null, "the server answered the close");
          assert.deepEqual(answer.payload, closePayload(1000));
          // What was in the kernel's buffers and the frame in progress came first; the
          // rest was dropped instead of holding the answer back.
          assert.ok(
            dataBytes < count * size / 2,
            `${dataBytes} bytes of data came before the close answer`,
          );
          assert.equal(await within(reader.frame(), 5000, "the server's FIN"), null);
          await waitFor(() => closes.length === 1, 5000, "close handler");
          assert.deepEqual(closes[0], [1000, ""]);
        } finally {
          conn.close();
          await server.shutdown();
        }
      });
    });
  }
});

Deno.test("data the peer reads still goes out before the answer to its close", async (t) => {
  await stepPerPoller(t, POLLERS, async (poller) => {
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      poller,
      pingInterval: 0,
      idleTimeout: 0,
      websocket: {
        message(ws, data) {
          // A reply to the last message before the close, and a large one.
          ws.send(`re: ${data as string}`);
          ws.send(new Uint8Array(200_000).fill(1));
        },
      },
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      const reader = new FrameReader(conn);
      await conn.write(new TextEncoder().encode(UPGRADE));
      assert.equal(await within(reader.head(), 5000, "101"), "HTTP/1.1 101 Switching Protocols");
      const both = new Uint8Array([
        ...rawFrame({ opcode: 0x1, payload: "q" }),
        ...rawFrame({ opcode: 0x8, payload: closePayload(1000) }),
      ]);
      await conn.write(both);
      const first = await within(reader.frame(), 5000, "reply");
      assert.equal(first?.opcode, 0x1);
      assert.equal(new TextDecoder().decode(first!.payload), "re: q");
      const big = await within(reader.frame(), 5000, "large reply");
      assert.equal(big?.opcode, 0x2);
      assert.equal(big!.payload.length, 200_000);
      const close = await within(reader.frame(), 5000, "close answer");
      assert.equal(close?.opcode, 0x8);
      assert.deepEqual(close!.payload, closePayload(1000));
    } finally {
      conn.close();
      await server.shutdown();
    }
  });
});

/**
 * Regressions found in review: the arena refilled by a callback during an early flush,
 * pongs to a peer that pings but never reads, and a throwing `webSocketClass`.
 */
import assert from "node:assert/strict";
import { serve, WebSocket } from "../../mod.ts";
import { libc } from "../../ffi/libc.ts";
import { ARENA_FRAME_LIMIT, Outbox, type OutboxConnection } from "../../core/outbox.ts";
import { plainTransport } from "../../transport/plain.ts";
import {
  delay,
  indexOfHeadEnd,
  LINUX_POLLERS,
  openFds,
  rawFrame,
  stepPerPoller,
  within,
} from "../fixtures/harness.ts";

const UPGRADE =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** Reads until the end of the response head; returns the status line. */
async function readStatus(conn: Deno.Conn): Promise<string> {
  let got = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  while (indexOfHeadEnd(got) < 0) {
    const n = await conn.read(buf);
    if (n === null) break;
    const next = new Uint8Array(got.length + n);
    next.set(got);
    next.set(buf.subarray(0, n), got.length);
    got = next;
  }
  const text = new TextDecoder().decode(got);
  return text.slice(0, text.indexOf("\r\n"));
}

Deno.test("outbox: a callback that refills the arena during an early flush gets no overflow", () => {
  const before = openFds();
  // A pipe is not a socket: send() on it fails (ENOTSOCK), which runs the `failed` callback.
  const fds = new Int32Array(2);
  assert.equal(libc().sym.pipe(fds), 0);
  type Conn = OutboxConnection;
  const conn = (fd: number): Conn => ({
    fd,
    transport: plainTransport,
    rs: 0,
    re: 0,
    q: null,
    qHead: 0,
    qBytes: 0,
    qTail: null,
    dirty: false,
    blocked: false,
    partial: false,
  });
  const victim = conn(fds[1]);
  const other = conn(fds[1]);
  let refills = 0;
  const outbox: Outbox<Conn> = new Outbox<Conn>({
    blocked() {},
    drained() {},
    failed() {
      // The owner's callback sends a lot while the outer alloc is in progress.
      for (let i = 0; i < 17; i++) {
        const at = outbox.alloc(60_000);
        if (at >= 0) {
          outbox.pushRange(other, at, at + 60_000);
          refills++;
        }
      }
    },
    wrote() {},
  });
  for (let i = 0; i < 17; i++) {
    const at = outbox.alloc(60_000);
    assert.ok(at >= 0);
    outbox.pushRange(victim, at, at + 60_000);
  }
  const at = outbox.alloc(60_000);
  assert.ok(refills > 0, "the callback ran inside the early flush");
  assert.ok(
    at === -1 || at + 60_000 <= outbox.arena.length,
    `alloc returned ${at}: beyond the arena of ${outbox.arena.length}`,
  );
  assert.ok(60_000 <= ARENA_FRAME_LIMIT);
  outbox.discard(victim);
  outbox.discard(other);
  libc().sym.close(fds[0]);
  libc().sym.close(fds[1]);
  assert.equal(openFds(), before);
});

Deno.test("a peer that pings without reading is cut off at the backpressure limit", async (t) => {
  await stepPerPoller(t, LINUX_POLLERS, async (poller) => {
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      poller,
      backpressureLimit: 64 * 1024,
      pingInterval: 0,
      idleTimeout: 0,
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode(UPGRADE));
      assert.equal(
        await within(readStatus(conn), 5000, "101 answer"),
        "HTTP/1.1 101 Switching Protocols",
      );
      // 125-byte pings as fast as the socket takes them, never reading a pong.
      const ping = rawFrame({ opcode: 0x9, payload: new Uint8Array(125) });
      const burst = new Uint8Array(ping.length * 256);
      for (let i = 0; i < 256; i++) burst.set(ping, i * ping.length);
      const deadline = Date.now() + 10_000;
      while (server.manager.stats.slowConsumers === 0 && Date.now() < deadline) {
        try {
          await within(conn.write(burst), 1000, "write pings");
        } catch {
          break; // the server closed the connection (or our buffer is full): stop
        }
      }
      await delay(100);
      assert.ok(server.manager.stats.slowConsumers >= 1, "the pinging peer was dropped");
      assert.equal(server.manager.size, 0);
    } finally {
      conn.close();
      await server.shutdown();
    }
  });
});

Deno.test("a throwing webSocketClass gets the client a 500, not a leaked socket", async (t) => {
  await stepPerPoller(t, LINUX_POLLERS, async (poller) => {
    const errors: unknown[] = [];
    class Broken extends WebSocket {
      constructor() {
        super();
        throw new Error("constructor failed");
      }
    }
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      poller,
      webSocketClass: Broken,
      handlers: { error: (_ws, err) => errors.push(err) },
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode(UPGRADE));
      assert.equal(
        await within(readStatus(conn), 5000, "500 answer"),
        "HTTP/1.1 500 Internal Server Error",
      );
      assert.equal(errors.length, 1);
      assert.equal(server.pendingHandshakes <= 1, true);
    } finally {
      conn.close();
      await server.shutdown();
    }
  });
});

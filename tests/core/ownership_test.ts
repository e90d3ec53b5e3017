/**
 * Moving connections between managers (`remove()` / `adopt()`): nothing a peer sent is lost
 * or reordered when a handler gives its connection away in the middle of a read, when
 * `open()` does it with frames that came with the handshake, or when thousands of moves
 * happen while messages flow both ways; a poller that refuses the descriptor leaves the
 * connection where it was.
 */

import assert from "node:assert/strict";
import { type Server, WebSocket, WebSocketManager } from "../../mod.ts";
import { concat } from "../fixtures/bytes.ts";
import { delay, indexOfHeadEnd, waitFor, within } from "../fixtures/harness.ts";
import { type Client, clientFrame, serverTest, withServer } from "../fixtures/manager/helpers.ts";

serverTest(
  "remove() inside a message handler keeps the frames behind it for the next manager",
  async (poller) => {
    const first: string[] = [];
    const second: string[] = [];
    const pings: string[] = [];
    const errors: unknown[] = [];
    const next = new WebSocketManager({
      poller,
      handlers: {
        message: (_ws, data) => void second.push(data as string),
        ping: (_ws, payload) => void pings.push(new TextDecoder().decode(payload)),
        error: (_ws, err) => void errors.push(err),
      },
    });
    next.start();
    let server: Server | null = null;
    let moved: WebSocket | null = null;
    try {
      await withServer({
        poller,
        websocket: {
          message(ws, data) {
            first.push(data as string);
            if (data === "a") {
              server!.manager.remove(ws);
              moved = ws;
              setTimeout(() => next.adopt(ws), 200);
            }
          },
          error: (_ws, err) => void errors.push(err),
        },
      }, async (s, scope) => {
        server = s;
        const raw = await scope.raw(s.port);
        // One write: the handler of "a" removes the connection while the rest is unread.
        await raw.write(concat(
          clientFrame(0x1, "a"),
          clientFrame(0x1, "b"),
          clientFrame(0x9, "p"),
          clientFrame(0x1, "c"),
        ));
        await delay(50);
        await raw.sendFrame(0x1, "d");
        await waitFor(() => second.length === 3, 5_000, "b, c and d on the second manager");
        assert.deepEqual(first, ["a"]);
        assert.deepEqual(second, ["b", "c", "d"]);
        assert.deepEqual(pings, ["p"]);
        const pong = await raw.readFrame();
        assert.equal(pong?.opcode, 0xa);
        assert.equal(new TextDecoder().decode(pong!.payload), "p");
        assert.deepEqual(errors, []);
        assert.equal(next.has(moved!), true);
        (moved as WebSocket | null)!.close(1000);
        const close = await raw.readFrame();
        assert.equal(close?.opcode, 0x8);
      });
    } finally {
      await next.closeAll(1001, "", 1_000);
      next.stop();
      await next.join();
    }
  },
);

serverTest(
  "remove() inside open() keeps the frames that came with the handshake",
  async (poller) => {
    const second: string[] = [];
    const next = new WebSocketManager({
      poller,
      handlers: { message: (_ws, data) => void second.push(data as string) },
    });
    next.start();
    let server: Server | null = null;
    try {
      await withServer({
        poller,
        websocket: {
          open(ws) {
            server!.manager.remove(ws);
            queueMicrotask(() => next.adopt(ws));
          },
          message: () => assert.fail("the first manager must not see any message"),
        },
      }, async (s) => {
        server = s;
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
        try {
          const request = new TextEncoder().encode(
            `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          );
          await conn.write(concat(request, clientFrame(0x1, "x"), clientFrame(0x1, "y")));
          await waitFor(() => second.length === 2, 5_000, "x and y on the second manager");
          assert.deepEqual(second, ["x", "y"]);
          let got: Uint8Array = new Uint8Array(0);
          const buf = new Uint8Array(4096);
          while (indexOfHeadEnd(got) < 0) {
            const n = await within(conn.read(buf), 5_000, "101 response");
            if (n === null) throw new Error("closed before the 101");
            got = concat(got, buf.subarray(0, n));
          }
          assert.match(new TextDecoder().decode(got), /^HTTP\/1\.1 101/);
        } finally {
          conn.close();
        }
      });
    } finally {
      await next.closeAll(1001, "", 1_000);
      next.stop();
      await next.join();
    }
  },
);

serverTest(
  "thousands of moves between two managers while messages flow both ways lose nothing",
  async (poller) => {
    const CLIENTS = 8;
    const MESSAGES = 400;
    let moves = 0;
    let server: Server | null = null;
    // Every second message moves its connection to the other manager in the middle of a read.
    const echo = (ws: WebSocket, data: string | Uint8Array | ArrayBuffer): void => {
      ws.send(data as string);
      if (Number((data as string).split(":")[1]) % 2 === 1) {
        const to = ws.manager === other ? server!.manager : other;
        to.adopt(ws);
        moves++;
      }
    };
    const other: WebSocketManager = new WebSocketManager({ poller, handlers: { message: echo } });
    other.start();
    const sockets: WebSocket[] = [];
    try {
      await withServer({
        poller,
        pingInterval: 0,
        idleTimeout: 0,
        websocket: {
          open: (ws) => void sockets.push(ws),
          message: echo,
        },
      }, async (s, scope) => {
        server = s;
        const clients: Client[] = [];
        for (let i = 0; i < CLIENTS; i++) clients.push(await scope.client(s.port, `/c${i}`));
        await waitFor(() => sockets.length === CLIENTS, 5_000, "all open");
        // Others happen between reads, from a timer.
        const mover = setInterval(() => {
          for (let k = 0; k < 4; k++) {
            const ws = sockets[(moves + k) % sockets.length];
            if (ws.readyState !== WebSocket.OPEN) continue;
            const to = ws.manager === other ? server!.manager : other;
            to.adopt(ws);
            moves++;
          }
        }, 1);
        try {
          const senders = clients.map(async (c, i) => {
            for (let m = 0; m < MESSAGES; m++) {
              await c.send(`${i}:${m}`);
              if (m % 50 === 0) await delay(1);
            }
          });
          await within(Promise.all(senders), 20_000, "all sent");
          for (let i = 0; i < CLIENTS; i++) {
            for (let m = 0; m < MESSAGES; m++) {
              assert.equal(await clients[i].nextText(10_000), `${i}:${m}`);
            }
          }
        } finally {
          clearInterval(mover);
        }
        assert.ok(moves >= 1_000, `only ${moves} moves`);
        for (const c of clients) await c.close();
      });
    } finally {
      await other.closeAll(1001, "", 1_000);
      other.stop();
      await other.join();
    }
  },
);

serverTest(
  "adopt() into a manager whose poller refuses the descriptor leaves the connection in place",
  async (poller) => {
    const refusing = new WebSocketManager({ poller });
    // A closed poller refuses every registration.
    refusing.poller.close();
    await withServer({
      poller,
      websocket: { message: (ws, data) => void ws.send(data as string) },
    }, async (s, scope) => {
      const c = await scope.client(s.port);
      const [ws] = [...s.manager];
      assert.throws(() => refusing.adopt(ws));
      assert.equal(s.manager.has(ws), true);
      assert.equal(refusing.size, 0);
      await c.send("still here");
      assert.equal(await c.nextText(), "still here");
      await c.close();
    });
    refusing.stop();
    await refusing.join();
  },
);

Deno.test("a frame header announcing 64 MiB reserves nothing before its payload", async () => {
  const before = Deno.memoryUsage().external;
  await withServer({ pingInterval: 0, idleTimeout: 0 }, async (s) => {
    const conns: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
        conns.push(conn);
        await conn.write(new TextEncoder().encode(
          `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        ));
        // Binary, masked, 64-bit length 64 MiB, a key, and one byte of payload.
        await conn.write(Uint8Array.from([
          0x82,
          0xff,
          0,
          0,
          0,
          0,
          0x04,
          0,
          0,
          0,
          1,
          2,
          3,
          4,
          0x55,
        ]));
      }
      await waitFor(() => s.manager.size === 40, 5_000, "40 connections");
      await delay(100);
      const grown = Deno.memoryUsage().external - before;
      assert.ok(grown < 64 * 1024 * 1024, `external memory grew by ${grown} bytes`);
    } finally {
      for (const c of conns) c.close();
    }
  });
});

Deno.test("messages that would pass maxIncompleteMessageBytes fail with 1013", async () => {
  await withServer({
    pingInterval: 0,
    idleTimeout: 0,
    maxIncompleteMessageBytes: 64 * 1024,
  }, async (s, scope) => {
    const raw = await scope.raw(s.port);
    // The first fragment fits; the second takes the message past the budget.
    await raw.sendFrame(0x2, new Uint8Array(40 * 1024), false);
    await raw.sendFrame(0x0, new Uint8Array(40 * 1024), false);
    const close = await raw.readFrame();
    assert.equal(close?.opcode, 0x8);
    assert.equal((close!.payload[0] << 8) | close!.payload[1], 1013);
  });
});

Deno.test("a manager refused for its options opens no descriptor", () => {
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  const before = fds();
  assert.throws(() => new WebSocketManager({ maxMessageSize: -1 }));
  assert.throws(() => new WebSocketManager({ maxIncompleteMessageBytes: 0 }));
  assert.equal(fds(), before);
});

serverTest(
  "closeAll() with an invalid code or reason throws before closing anything",
  async (poller) => {
    await withServer({ poller }, async (s, scope) => {
      const c = await scope.client(s.port);
      assert.throws(() => s.manager.closeAll(999));
      assert.throws(() => s.manager.closeAll(1000, "x".repeat(124)));
      const [ws] = [...s.manager];
      assert.equal(ws.readyState, WebSocket.OPEN);
      await c.send("open?");
      await delay(50);
      assert.equal(c.closeInfo, null);
    });
  },
);

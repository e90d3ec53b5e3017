/**
 * The WebSocket API users bring from Bun, ws and the WHATWG WebSocket: a real EventTarget
 * (once, signal, dispatchEvent), `error` before `close` when the peer breaks the protocol
 * or the connection is lost, the handshake's headers, Bun-style send() statuses, and
 * messages as an async iterable whose reading pauses while the consumer lags.
 */

import assert from "node:assert/strict";
import { SendStatus, type WebSocket } from "../../mod.ts";
import { delay, waitFor } from "../fixtures/harness.ts";
import { NodeWebSocket, serverTest, withServer } from "../fixtures/manager/helpers.ts";

serverTest("a WebSocket is an EventTarget: once, signal, dispatchEvent", async (poller) => {
  const seen: string[] = [];
  const opened = Promise.withResolvers<WebSocket>();
  await withServer(
    { poller, websocket: { open: (ws) => opened.resolve(ws) } },
    async (s, scope) => {
      const c = await scope.client(s.port);
      const ws = await opened.promise;
      assert.ok(ws instanceof EventTarget);
      const abort = new AbortController();
      ws.addEventListener("message", () => seen.push("once"), { once: true });
      ws.addEventListener("message", () => seen.push("until abort"), { signal: abort.signal });
      ws.addEventListener("custom", (ev) => seen.push(`custom ${(ev as CustomEvent).detail}`));
      assert.equal(ws.dispatchEvent(new CustomEvent("custom", { detail: 7 })), true);
      await c.send("1");
      await waitFor(() => seen.length === 3, 2_000, "first message");
      abort.abort();
      await c.send("2");
      await delay(50);
      assert.deepEqual(seen, ["custom 7", "once", "until abort"]);
    },
  );
});

serverTest("error then close when the peer breaks the protocol or goes away", async (poller) => {
  const events = new Map<string, string[]>();
  await withServer({
    poller,
    websocket: {
      open(ws) {
        const log: string[] = [];
        events.set(ws.url, log);
        ws.onerror = () => log.push("error");
        ws.addEventListener("close", (ev) => log.push(`close ${(ev as CloseEvent).code}`));
      },
    },
  }, async (s, scope) => {
    // A frame with a reserved opcode: the server fails the connection with 1002.
    const broken = await scope.raw(s.port, "/broken");
    await broken.sendFrame(0x3, "x");
    await waitFor(() => (events.get("/broken")?.length ?? 0) === 2, 2_000, "broken closed");
    assert.deepEqual(events.get("/broken"), ["error", "close 1006"]);
    // A peer that vanishes without a closing handshake.
    const lost = await scope.raw(s.port, "/lost");
    await lost.close();
    await waitFor(() => (events.get("/lost")?.length ?? 0) === 2, 2_000, "lost closed");
    assert.deepEqual(events.get("/lost"), ["error", "close 1006"]);
    // A clean close: no error.
    const clean = await scope.client(s.port, "/clean");
    await clean.close(1000);
    await waitFor(() => (events.get("/clean")?.length ?? 0) === 1, 2_000, "clean closed");
    assert.deepEqual(events.get("/clean"), ["close 1000"]);
  });
});

serverTest(
  "the handshake's headers, URL and address are there in open and later",
  async (poller) => {
    const seen: string[] = [];
    await withServer({
      poller,
      websocket: {
        open(ws) {
          seen.push(`open ${ws.url} ${ws.headers.get("x-token")} ${ws.remoteAddress?.hostname}`);
        },
        message(ws) {
          seen.push(`message ${ws.headers.get("x-token")}`);
        },
      },
    }, async (s) => {
      const c = new NodeWebSocket(`ws://127.0.0.1:${s.port}/room?id=3`, {
        headers: { "X-Token": "abc" },
      });
      await new Promise<void>((resolve) => c.on("open", () => resolve()));
      c.send("hi");
      await waitFor(() => seen.length === 2, 2_000, "message");
      c.terminate();
      await new Promise<void>((resolve) => c.on("close", () => resolve()));
      assert.deepEqual(seen, ["open /room?id=3 abc 127.0.0.1", "message abc"]);
    });
  },
);

serverTest("send() tells sent, backpressure, dropped and closed apart", async (poller) => {
  const opened = Promise.withResolvers<WebSocket>();
  await withServer({
    poller,
    backpressureLimit: 64 * 1024,
    backpressurePolicy: "buffer",
    websocket: { open: (ws) => opened.resolve(ws) },
  }, async (s, scope) => {
    const raw = await scope.raw(s.port); // does not read
    const ws = await opened.promise;
    assert.equal(ws.send("hi"), 4, "the frame's size");
    const chunk = new Uint8Array(32 * 1024);
    let status = 0;
    // Until the kernel's buffers are full too (loopback takes megabytes).
    for (let i = 0; i < 4_000 && status !== SendStatus.BACKPRESSURE; i++) {
      status = ws.send(chunk);
      await delay(0);
    }
    assert.equal(status, SendStatus.BACKPRESSURE);
    ws.terminate();
    assert.equal(ws.send("late"), SendStatus.CLOSED);
    await raw.close();
  });
  const dropped = Promise.withResolvers<WebSocket>();
  await withServer({
    poller,
    backpressureLimit: 64 * 1024,
    backpressurePolicy: "drop",
    websocket: { open: (ws) => dropped.resolve(ws) },
  }, async (s, scope) => {
    const raw = await scope.raw(s.port);
    const ws = await dropped.promise;
    const chunk = new Uint8Array(32 * 1024);
    let status = 1;
    for (let i = 0; i < 4_000 && status !== SendStatus.DROPPED; i++) {
      status = ws.send(chunk);
      await delay(0);
    }
    assert.equal(status, SendStatus.DROPPED);
    await raw.close();
  });
});

serverTest(
  "for await over messages: everything in order, reading paused while the consumer lags",
  async (poller) => {
    const N = 500;
    const got: string[] = [];
    let pausedSeen = false;
    const done = Promise.withResolvers<void>();
    let server: { manager: { stats: { bytesIn: number } } } | null = null;
    await withServer({
      poller,
      websocket: {
        async open(ws) {
          for await (const message of ws) {
            got.push(message as string);
            // A slow consumer: the socket backs up meanwhile.
            if (got.length % 100 === 0) {
              await delay(100);
              if (server!.manager.stats.bytesIn < N * 10) pausedSeen = true;
            }
          }
          done.resolve();
        },
      },
    }, async (s, scope) => {
      server = s;
      const c = await scope.client(s.port);
      for (let i = 0; i < N; i++) await c.send(`m${i}`);
      await waitFor(() => got.length === N, 10_000, "all consumed");
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => `m${i}`));
      assert.ok(pausedSeen, "reading paused while the consumer lagged");
      await c.close();
      await done.promise;
    });
  },
);

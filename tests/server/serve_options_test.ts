/**
 * What `serve()` gives users without a `fetch` handler and around the server's life:
 * allowed origins, a verify hook, subprotocol choice, server.publish()/subscriberCount(),
 * publishToSelf, topics that follow a connection through adopt(), abort signal and
 * `await using`, and Prometheus metrics on a path.
 */

import assert from "node:assert/strict";
import { serve, type Server, type WebSocket, WebSocketManager } from "../../mod.ts";
import { Child, delay, waitFor, within } from "../fixtures/harness.ts";
import { Client, serverTest, withServer } from "../fixtures/manager/helpers.ts";

/** Sends `request` and reads the whole answer. */
async function exchange(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let text = "";
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await within(conn.read(buf), 5_000, "answer");
      if (n === null) return text;
      text += new TextDecoder().decode(buf.subarray(0, n));
      if (text.startsWith("HTTP/1.1 101")) return text;
    }
  } finally {
    conn.close();
  }
}

function upgrade(path: string, extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

serverTest(
  "origins: an upgrade from another origin gets 403, a listed one or none opens",
  async (poller) => {
    await withServer({ poller, origins: ["https://app.example"] }, async (s) => {
      assert.match(
        await exchange(s.port, upgrade("/", "Origin: https://evil.example\r\n")),
        /^HTTP\/1\.1 403 /,
      );
      assert.match(
        await exchange(s.port, upgrade("/", "Origin: https://APP.example\r\n")),
        /^HTTP\/1\.1 101 /,
      );
      assert.match(await exchange(s.port, upgrade("/")), /^HTTP\/1\.1 101 /);
      assert.equal(s.stats.responses[403], 1);
    });
  },
);

serverTest("verify: accept, refuse, answer, or accept with data and a protocol", async (poller) => {
  const opened: string[] = [];
  await withServer<{ user: string }>({
    poller,
    protocols: ["v2", "v1"],
    verify(request) {
      const path = new URL(request.url).pathname;
      if (path === "/no") return false;
      if (path === "/teapot") return new Response("short and stout", { status: 418 });
      if (path === "/later") return delay(20).then(() => true);
      return { data: { user: request.headers.get("x-user") ?? "?" } };
    },
    websocket: { open: (ws) => void opened.push(`${ws.url} ${ws.data?.user} ${ws.protocol}`) },
  }, async (s) => {
    assert.match(await exchange(s.port, upgrade("/no")), /^HTTP\/1\.1 403 /);
    const teapot = await exchange(s.port, upgrade("/teapot"));
    assert.match(teapot, /^HTTP\/1\.1 418 /);
    assert.match(teapot, /short and stout/);
    assert.match(await exchange(s.port, upgrade("/later")), /^HTTP\/1\.1 101 /);
    const yes = await exchange(
      s.port,
      upgrade("/yes", "X-User: ada\r\nSec-WebSocket-Protocol: v1, v2\r\n"),
    );
    assert.match(yes, /^HTTP\/1\.1 101 /);
    // The server's preference wins among what the client offered.
    assert.match(yes, /Sec-WebSocket-Protocol: v2\r\n/i);
    await waitFor(() => opened.length === 2, 2_000, "two opened");
    assert.deepEqual(opened.toSorted(), ["/later undefined ", "/yes ada v2"]);
  });
});

serverTest(
  "selectProtocol picks among the offered ones; none offered, none answered",
  async (poller) => {
    await withServer({
      poller,
      selectProtocol: (offered) => offered.includes("chat") ? "chat" : null,
    }, async (s) => {
      const a = await exchange(s.port, upgrade("/", "Sec-WebSocket-Protocol: x, chat\r\n"));
      assert.match(a, /Sec-WebSocket-Protocol: chat\r\n/i);
      const b = await exchange(s.port, upgrade("/", "Sec-WebSocket-Protocol: x\r\n"));
      assert.match(b, /^HTTP\/1\.1 101 /);
      assert.doesNotMatch(b, /Sec-WebSocket-Protocol/i);
    });
  },
);

serverTest("server.publish, subscriberCount and publishToSelf", async (poller) => {
  for (const publishToSelf of [false, true]) {
    await withServer({
      poller,
      publishToSelf,
      websocket: {
        open: (ws) => ws.subscribe("room"),
        message: (ws, data) => void ws.publish("room", data as string),
      },
    }, async (s, scope) => {
      const a = await scope.client(s.port);
      const b = await scope.client(s.port);
      await waitFor(() => s.subscriberCount("room") === 2, 2_000, "subscribed");
      assert.equal(s.publish("room", "from the server"), 2);
      assert.equal(await a.nextText(), "from the server");
      assert.equal(await b.nextText(), "from the server");
      await a.send("from a");
      assert.equal(await b.nextText(), "from a");
      if (publishToSelf) assert.equal(await a.nextText(), "from a");
      await delay(50);
      assert.equal(a.messages.length, publishToSelf ? 2 : 1);
    });
  }
});

serverTest("topics follow a connection through remove() and adopt()", async (poller) => {
  const other = new WebSocketManager({ poller });
  other.start();
  try {
    const opened = Promise.withResolvers<WebSocket>();
    await withServer({
      poller,
      websocket: {
        open: (ws) => {
          ws.subscribe("room");
          opened.resolve(ws);
        },
      },
    }, async (s, scope) => {
      const c = await scope.client(s.port);
      const ws = await opened.promise;
      other.adopt(ws);
      assert.equal(s.subscriberCount("room"), 0);
      assert.equal(other.subscriberCount("room"), 1);
      assert.deepEqual(ws.topics, ["room"]);
      other.publish("room", "moved with its topic");
      assert.equal(await c.nextText(), "moved with its topic");
      await c.close();
    });
  } finally {
    other.stop();
    await other.join();
  }
});

Deno.test("an aborted signal shuts the server down; await using does too", async () => {
  const controller = new AbortController();
  const server = serve({ hostname: "127.0.0.1", port: 0, signal: controller.signal });
  const c = await Client.open(server.port);
  controller.abort();
  assert.equal((await c.closed).code, 1001);
  await within(server.finished, 5_000, "finished");

  let port = 0;
  let kept: Server | null = null;
  {
    await using s = serve({ hostname: "127.0.0.1", port: 0 });
    port = s.port;
    kept = s;
    const d = await Client.open(port);
    await d.close();
  }
  await within(kept!.finished, 5_000, "disposed");
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));

  {
    await using manager = new WebSocketManager();
    manager.start();
    assert.equal(manager.running, true);
  }
});

serverTest("metrics in the Prometheus text format, on metricsPath", async (poller) => {
  await withServer({
    poller,
    metricsPath: "/metrics",
    websocket: { message: (ws, data) => void ws.send(data as string) },
  }, async (s, scope) => {
    const c = await scope.client(s.port);
    await c.send("x");
    await c.nextText();
    await exchange(s.port, "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const text = await exchange(s.port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /Content-Type: text\/plain; version=0\.0\.4/i);
    assert.match(text, /\nfdws_connections 1\n/);
    assert.match(text, /\nfdws_messages_received_total 1\n/);
    assert.match(text, /\nfdws_http_responses_total\{status="426"\} 1\n/);
    assert.match(text, /\nfdws_loop_tick_seconds_count \d+\n/);
    assert.equal(s.metrics().split("\n")[0], "# HELP fdws_connections Open WebSocket connections.");
    // No backplane, no backplane series.
    assert.doesNotMatch(text, /fdws_backplane_/);
  });
});

Deno.test("signals with a cleanup function: drain, run the cleanup, exit 0", async () => {
  const child = new Child(Deno.execPath(), [
    "run",
    "--allow-ffi",
    "--allow-read",
    new URL("../fixtures/server/cleanup_server.ts", import.meta.url).pathname,
  ], { stderr: "inherit" });
  try {
    const port = (JSON.parse(await child.stdout.line(10_000, "port")) as { port: number }).port;
    const c = await Client.open(port);
    child.process.kill("SIGTERM");
    assert.equal((await c.closed).code, 1001);
    const status = await within(child.status, 10_000, "exit");
    assert.equal(status.code, 0);
    const out = (await child.stdout.rest()).trim().split("\n");
    assert.deepEqual(out, ["closed 1001", "cleanup SIGTERM 0"]);
  } finally {
    await child.stop();
  }
});

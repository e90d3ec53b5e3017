/**
 * `wss://` end to end: `serve({ cert, key })` with real TLS clients (our own, npm:ws,
 * Deno's WebSocket and Python's websockets trusting a test CA made with the openssl
 * command), our client against `Deno.serve` with TLS, refusals by our client (wrong CA,
 * wrong host name), bad certificates failing serve(), hostile peers on the TLS port
 * costing only their own connection, and a certificate reload.
 */

import assert from "node:assert/strict";
import { connect, ConnectError, serve, TlsError, type WebSocket } from "../../mod.ts";
import { PYTHON_WEBSOCKETS, requireTool } from "../deps/tools.ts";
import { makeTestPki, type TestPki } from "../fixtures/tls.ts";
import {
  assertNoFdLeak,
  delay,
  openFds,
  POLLERS,
  runToEnd,
  stepPerPoller,
  waitFor,
  within,
} from "../fixtures/harness.ts";
import { NodeWebSocket, warmUp } from "../fixtures/manager/helpers.ts";

let pki: TestPki | null = null;
function testPki(): TestPki {
  return pki ??= makeTestPki();
}
addEventListener("unload", () => pki?.remove());

function echoServer(poller: string, extra: Record<string, unknown> = {}) {
  const p = testPki();
  return serve({
    hostname: "127.0.0.1",
    port: 0,
    poller: poller as "epoll",
    cert: p.cert,
    key: p.key,
    websocket: { message: (ws, data) => void ws.send(data) },
    ...extra,
  });
}

async function nextMessage(ws: WebSocket): Promise<string> {
  const got = Promise.withResolvers<string>();
  ws.addEventListener("message", (ev) => got.resolve((ev as MessageEvent).data), { once: true });
  return await within(got.promise, 5_000, "message");
}

/** Node's TLS layer (npm:ws) opens descriptors of its own on first use: open them first. */
async function warmUpNodeTls(): Promise<void> {
  const p = testPki();
  const server = echoServer("epoll");
  try {
    const node = new NodeWebSocket(`wss://localhost:${server.port}/`, {
      ca: Deno.readTextFileSync(p.ca),
    } as unknown as { headers?: Record<string, string> });
    await new Promise<void>((resolve) => node.on("open", () => resolve()));
    node.terminate();
    await new Promise<void>((resolve) => node.on("close", () => resolve()));
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
}

Deno.test("wss: our client, npm:ws, Deno's WebSocket and Python websockets", async (t) => {
  await warmUp();
  await warmUpNodeTls();
  const p = testPki();
  await stepPerPoller(t, POLLERS, async (poller) => {
    const server = echoServer(poller);
    try {
      assert.equal(server.url, `wss://127.0.0.1:${server.port}/`);
      const url = `wss://localhost:${server.port}/tls`;
      // Our client, trusting the test CA; a 1 MiB message crosses many records.
      const ws = await connect(url, { ca: p.ca });
      ws.send("hello over tls");
      assert.equal(await nextMessage(ws), "hello over tls");
      const big = new Uint8Array(1024 * 1024).map((_, i) => i * 7);
      const echoed = Promise.withResolvers<Uint8Array>();
      ws.addEventListener("message", (ev) => echoed.resolve((ev as MessageEvent).data), {
        once: true,
      });
      ws.send(big);
      assert.deepEqual(await within(echoed.promise, 10_000, "1 MiB echo"), big);
      ws.close(1000);

      // npm:ws with the CA.
      const node = new NodeWebSocket(url, {
        ca: Deno.readTextFileSync(p.ca),
      } as unknown as { headers?: Record<string, string> });
      const nodeGot = Promise.withResolvers<string>();
      node.on("open", () => node.send("from ws"));
      node.on("message", (d) => nodeGot.resolve(new TextDecoder().decode(d as Uint8Array)));
      assert.equal(await within(nodeGot.promise, 5_000, "npm:ws echo"), "from ws");
      node.terminate();

      // Deno's WebSocket, in a child told to trust the test CA.
      const deno = await runToEnd(
        Deno.execPath(),
        [
          "eval",
          `const ws = new WebSocket(${JSON.stringify(url)});
         ws.onopen = () => ws.send("from deno");
         ws.onmessage = (e) => { console.log(e.data); ws.close(); };`,
        ],
        20_000,
        { DENO_CERT: p.ca, DENO_NO_UPDATE_CHECK: "1" },
      );
      assert.equal(deno.stdout.trim(), "from deno", deno.stderr);

      // Python's websockets with an SSL context.
      const python = await requireTool(PYTHON_WEBSOCKETS);
      const py = await runToEnd(python, [
        "-c",
        `import asyncio, ssl, websockets
async def main():
    ctx = ssl.create_default_context(cafile=${JSON.stringify(p.ca)})
    async with websockets.connect(${JSON.stringify(url)}, ssl=ctx) as ws:
        await ws.send("from python")
        print(await ws.recv())
asyncio.run(main())`,
      ], 20_000);
      assert.equal(py.stdout.trim(), "from python", py.stderr);
      await waitFor(() => server.manager.size === 0, 5_000, "all closed");
    } finally {
      await server.shutdown({ timeout: 1_000 });
    }
  });
});

Deno.test("wss: our client refuses a wrong CA and a wrong host name", async () => {
  await warmUp();
  const p = testPki();
  const before = openFds();
  const server = echoServer("epoll");
  try {
    const wrongCa = await connect(`wss://localhost:${server.port}/`, { ca: p.otherCa }).catch((e) =>
      e
    );
    assert.ok(wrongCa instanceof ConnectError, String(wrongCa));
    assert.equal(wrongCa.code, "HANDSHAKE_FAILED");
    assert.match(wrongCa.message, /certificate/i);
    // A server whose certificate names wrong.test, not localhost.
    const wrong = echoServer("epoll", { cert: p.wrongHostCert, key: p.wrongHostKey });
    const wrongName = await connect(`wss://localhost:${wrong.port}/`, { ca: p.ca })
      .catch((e) => e);
    await wrong.shutdown({ timeout: 1_000 });
    assert.ok(wrongName instanceof ConnectError, String(wrongName));
    assert.equal(wrongName.code, "HANDSHAKE_FAILED");
    assert.match(wrongName.message, /hostname|host name|mismatch/i);
    // The server counted the failed handshake and still serves.
    await waitFor(() => server.stats.tlsHandshakeFailures === 1, 3_000, "failure counted");
    const ok = await connect(`wss://127.0.0.1:${server.port}/`, { ca: p.ca });
    ok.send("fine");
    assert.equal(await nextMessage(ok), "fine");
    ok.close();
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
  await assertNoFdLeak(before);
});

Deno.test("wss: our client against Deno.serve with TLS", async () => {
  const p = testPki();
  const controller = new AbortController();
  const ready = Promise.withResolvers<number>();
  const deno = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(p.cert),
    key: Deno.readTextFileSync(p.key),
    signal: controller.signal,
    onListen: ({ port }) => ready.resolve(port),
  }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(`deno:${e.data}`);
    return response;
  });
  try {
    const port = await ready.promise;
    const ws = await connect(`wss://localhost:${port}/`, { ca: p.ca });
    ws.send("hi");
    assert.equal(await nextMessage(ws), "deno:hi");
    ws.close();
    await delay(50);
  } finally {
    controller.abort();
    await deno.finished;
  }
});

Deno.test("serve() fails at once, with a TlsError, for certificates it cannot use", () => {
  const p = testPki();
  const before = openFds();
  const cases: [Record<string, string>, string][] = [
    [{ cert: `${p.dir}/missing.pem`, key: p.key }, "CERT_UNREADABLE"],
    [{ cert: p.cert, key: p.strayKey }, "KEY_MISMATCH"],
    [{ cert: p.cert }, "CERT_MISSING"],
  ];
  for (const [options, code] of cases) {
    assert.throws(
      () => serve({ hostname: "127.0.0.1", port: 0, ...options }),
      (err: unknown) => err instanceof TlsError && err.code === code,
      code,
    );
  }
  assert.equal(openFds(), before);
});

Deno.test("hostile peers on the TLS port cost their own connection only", async (t) => {
  await warmUp();
  await stepPerPoller(t, POLLERS, async (poller) => {
    const server = echoServer(poller, { handshakeTimeout: 500 });
    const p = testPki();
    try {
      const good = await connect(`wss://localhost:${server.port}/`, { ca: p.ca });
      // A plaintext WebSocket client, garbage, a half handshake, an alert.
      const plain = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await plain.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const garbage = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await garbage.write(crypto.getRandomValues(new Uint8Array(2048)));
      const half = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      // The first bytes of a ClientHello record header, then nothing.
      await half.write(Uint8Array.from([0x16, 0x03, 0x01, 0x02]));
      const alert = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await alert.write(Uint8Array.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
      const closed = async (c: Deno.Conn): Promise<void> => {
        const buf = new Uint8Array(4096);
        for (;;) {
          const n = await within(c.read(buf).catch(() => null), 5_000, "server closes");
          if (n === null) return;
        }
      };
      await Promise.all([closed(plain), closed(garbage), closed(half), closed(alert)]);
      for (const c of [plain, garbage, half, alert]) c.close();
      assert.ok(server.stats.tlsHandshakeFailures >= 3, `${server.stats.tlsHandshakeFailures}`);
      good.send("still served");
      assert.equal(await nextMessage(good), "still served");
      good.close();
      await waitFor(() => server.pendingHandshakes === 0, 3_000, "nothing pending");
    } finally {
      await server.shutdown({ timeout: 1_000 });
    }
  });
});

Deno.test("reloadTls: new connections get the new certificate, open ones keep working", async () => {
  const p = testPki();
  const server = echoServer("epoll");
  try {
    const before = await connect(`wss://localhost:${server.port}/`, { ca: p.ca });
    server.reloadTls({ cert: p.wrongHostCert, key: p.wrongHostKey });
    // The new certificate names wrong.test: a client checking localhost refuses it.
    const refused = await connect(`wss://localhost:${server.port}/`, { ca: p.ca }).catch((e) => e);
    assert.ok(refused instanceof ConnectError);
    before.send("old session");
    assert.equal(await nextMessage(before), "old session");
    before.close();
    assert.throws(() => server.reloadTls({ cert: p.cert, key: p.strayKey }), TlsError);
    server.reloadTls({ cert: p.cert, key: p.key });
    const after = await connect(`wss://localhost:${server.port}/`, { ca: p.ca });
    after.close();
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

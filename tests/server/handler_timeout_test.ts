/**
 * A `fetch` handler that never settles must not hold its connection forever: the
 * handshake timeout applies to that phase too, the client gets 503 and the descriptor is
 * released (under every poller: select and kqueue do not notice a client that left while
 * nobody reads).
 */

import assert from "node:assert/strict";
import { delay, waitFor, within } from "../fixtures/harness.ts";
import { serverTest, withServer } from "../fixtures/manager/helpers.ts";

async function exchange(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await within(conn.read(buf), 5_000, "response");
      if (n === null) return text;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

const UPGRADE = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\n\r\n";

serverTest(
  "a fetch handler that never settles gets the client a 503 at the handshake timeout",
  async (poller) => {
    let calls = 0;
    await withServer({
      poller,
      handshakeTimeout: 300,
      fetch: () => {
        calls++;
        return new Promise<Response>(() => {});
      },
    }, async (server) => {
      const started = performance.now();
      const upgrade = await exchange(server.port, UPGRADE);
      assert.match(upgrade, /^HTTP\/1\.1 503 /);
      assert.ok(performance.now() - started >= 250, "answered before the timeout");
      const plain = await exchange(server.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      assert.match(plain, /^HTTP\/1\.1 503 /);
      assert.equal(calls, 2);
      await waitFor(() => server.pendingHandshakes === 0, 3_000, "connections released");
      assert.equal(server.stats.responses[503], 2);
    });
  },
);

serverTest(
  "a client that leaves while its fetch handler hangs is released at the timeout",
  async (poller) => {
    await withServer({
      poller,
      handshakeTimeout: 300,
      fetch: () => new Promise<Response>(() => {}),
    }, async (server) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(new TextEncoder().encode(UPGRADE));
      await waitFor(() => server.pendingHandshakes === 1, 3_000, "request read");
      conn.close();
      await delay(50);
      await waitFor(() => server.pendingHandshakes === 0, 3_000, "connection released");
    });
  },
);

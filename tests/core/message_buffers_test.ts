// `messageBuffers: "borrowed"`: handlers get views of reused buffers. Whatever they pass on
// at once (an echo) and whatever `for await` keeps must still be exactly what was sent, for
// messages whole in one read, spread over many reads, fragmented, and compressed.
import assert from "node:assert/strict";
import { ManagerError, WebSocketManager } from "../../mod.ts";
import { waitFor } from "../fixtures/harness.ts";
import { serverTest, withServer } from "../fixtures/manager/helpers.ts";

const SIZES = [0, 1, 125, 126, 65_535, 70_000, 300_000, 2_000_000];

/** Bytes that differ per message, so a buffer reused too early shows. */
function payload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${what}: byte ${i} is ${actual[i]}, not ${expected[i]}`);
    }
  }
}

serverTest(
  'messageBuffers "borrowed": echoes and iterated messages stay exact (plain and deflate)',
  async (poller) => {
    for (const deflate of [false, "shared", "dedicated"] as const) {
      const kept: Uint8Array[] = [];
      let views = 0;
      await withServer({
        poller,
        messageBuffers: "borrowed",
        perMessageDeflate: deflate === false ? false : { mode: deflate },
        websocket: {
          async open(ws) {
            if (!ws.url.endsWith("/keep")) return;
            for await (const m of ws) kept.push(m as Uint8Array);
          },
          message(ws, data) {
            if (ws.url.endsWith("/keep")) return;
            if (data instanceof Uint8Array && data.byteLength !== data.buffer.byteLength) views++;
            ws.send(data);
          },
        },
      }, async (s, scope) => {
        const sent = SIZES.map((size, i) => payload(size, i));
        // Echo: all sent back to back, so that several share a read and large ones span many.
        const echo = await scope.client(s.port, "/echo");
        await Promise.all(sent.map((m) => echo.send(m)));
        for (let i = 0; i < sent.length; i++) {
          const got = await echo.next(10_000);
          assert.equal(got.binary, true);
          assertBytes(got.data as Uint8Array, sent[i], `deflate ${deflate}, echo ${SIZES[i]}`);
        }
        assert.ok(views > 0, "handlers got views, not copies");
        // A fragmented message from a raw client, and a text message after it.
        const raw = await scope.raw(s.port, "/echo");
        const whole = payload(200_000, 99);
        await raw.sendFrame(0x2, whole.subarray(0, 1), false);
        await raw.sendFrame(0x0, whole.subarray(1, 150_000), false);
        await raw.sendFrame(0x0, whole.subarray(150_000), true);
        await raw.sendFrame(0x1, "after");
        const frame = await raw.readFrame(10_000);
        assert.ok(frame !== null);
        assertBytes(frame.payload, whole, `deflate ${deflate}, fragmented`);
        assert.equal(new TextDecoder().decode((await raw.readFrame())!.payload), "after");
        // The iterator's messages were copied: later messages did not overwrite them.
        const keep = await scope.client(s.port, "/keep");
        await Promise.all(sent.map((m) => keep.send(m)));
        await waitFor(() => kept.length === sent.length, 10_000, "all iterated");
        for (let i = 0; i < sent.length; i++) {
          assertBytes(kept[i], sent[i], `deflate ${deflate}, kept ${SIZES[i]}`);
        }
      });
    }
  },
);

Deno.test("messageBuffers: a value other than owned or borrowed is refused", () => {
  assert.throws(
    () => new WebSocketManager({ messageBuffers: "shared" as "owned" }),
    (err: unknown) => err instanceof ManagerError && err.code === "INVALID_OPTION",
  );
});

/**
 * The manager's shared deflate state: one compressor per window serving every connection
 * (and broadcasts), the threshold and the "no smaller" rule, lent decompressors, and
 * freeing.
 */

import assert from "node:assert/strict";
import nodeZlib from "node:zlib";
import { Buffer } from "node:buffer";
import { DeflateContext, SEND_UNCOMPRESSED } from "../../deflate/context.ts";
import { compressorOutput } from "../../deflate/compressor.ts";
import { liveStreams } from "../../deflate/z_stream.ts";
import { FdwsError } from "../../errors.ts";
import { concat, filled, hex, utf8 } from "../fixtures/bytes.ts";

const TAIL = hex("00 00 ff ff");

function nodeInflate(payload: Uint8Array, windowBits = 15): Uint8Array {
  return new Uint8Array(nodeZlib.inflateRawSync(Buffer.from(concat(payload, TAIL)), {
    windowBits,
    finishFlush: nodeZlib.constants.Z_SYNC_FLUSH,
  }));
}

const JSON_MESSAGE = utf8(JSON.stringify({
  type: "prices",
  items: Array.from({ length: 20 }, (_, i) => ({ symbol: `SYM${i}`, bid: 100 + i, ask: 101 + i })),
}));

Deno.test("context: shared compression", async (t) => {
  const before = liveStreams();
  const context = new DeflateContext({ threshold: 32 });

  await t.step("every window size; the same message compresses to the same bytes", () => {
    for (let bits = 8; bits <= 15; bits++) {
      const n = context.compress(JSON_MESSAGE, 0, JSON_MESSAGE.length, bits);
      assert.ok(n > 0 && n < JSON_MESSAGE.length);
      assert.equal(context.output, compressorOutput());
      const first = context.output.slice(0, n);
      assert.deepEqual(nodeInflate(first, Math.max(bits, 9)), JSON_MESSAGE);
      const again = context.compress(JSON_MESSAGE, 0, JSON_MESSAGE.length, bits);
      assert.deepEqual(context.output.slice(0, again), first, "no context carried over");
    }
    // Windows 8 and 9 share zlib's 9: seven streams for eight window sizes.
    assert.equal(liveStreams(), before + 7);
  });

  await t.step("below the threshold, or no smaller, the message goes uncompressed", () => {
    const short = utf8("x".repeat(31));
    assert.equal(context.compress(short, 0, short.length, 15), SEND_UNCOMPRESSED);
    const long = utf8("x".repeat(32));
    assert.ok(context.compress(long, 0, long.length, 15) > 0);
    const random = filled(1000, 5);
    assert.equal(context.compress(random, 0, random.length, 15), SEND_UNCOMPRESSED);
    // A range of a larger buffer.
    const framed = concat(filled(10, 1), JSON_MESSAGE, filled(10, 2));
    const n = context.compress(framed, 10, 10 + JSON_MESSAGE.length, 15);
    assert.deepEqual(nodeInflate(context.output.slice(0, n)), JSON_MESSAGE);
  });

  await t.step("free releases every shared stream", () => {
    context.free();
    context.free();
    assert.equal(liveStreams(), before);
    assert.throws(
      () => context.compress(JSON_MESSAGE, 0, JSON_MESSAGE.length, 15),
      (e: unknown) => e instanceof FdwsError && e.code === "ZLIB_STREAM_ENDED",
    );
    assert.throws(() => context.borrow(), FdwsError);
  });
});

Deno.test("context: lent decompressors", async (t) => {
  const before = liveStreams();
  const context = new DeflateContext({ idleDecompressors: 2 });
  const hello = hex("f2 48 cd c9 c9 07 00");

  await t.step("one at a time reuses one decompressor", () => {
    for (let i = 0; i < 5; i++) {
      const d = context.borrow();
      assert.equal(d.push(hello, 0, hello.length, true), "done");
      context.release(d);
    }
    assert.equal(context.lent, 0);
    assert.equal(liveStreams(), before + 1);
  });

  await t.step("concurrent messages borrow one each; idle ones beyond the limit are freed", () => {
    const lent = [context.borrow(), context.borrow(), context.borrow(), context.borrow()];
    assert.equal(context.lent, 4);
    lent.forEach((d) => assert.equal(d.push(hello, 0, 3, false), "more"));
    lent.forEach((d) => assert.equal(d.push(hello, 3, 7, true), "done"));
    lent.forEach((d) => context.release(d));
    assert.equal(context.lent, 0);
    assert.equal(liveStreams(), before + 2);
  });

  await t.step("a decompressor released mid-message is reset", () => {
    const d = context.borrow();
    assert.equal(d.push(hello, 0, 3, false), "more");
    context.release(d);
    const again = context.borrow();
    assert.equal(again.push(hello, 0, hello.length, true), "done");
    context.release(again);
  });

  await t.step("after free, a released decompressor is freed too", () => {
    const d = context.borrow();
    context.free();
    assert.equal(liveStreams(), before + 1);
    context.release(d);
    assert.equal(d.freed, true);
    assert.equal(liveStreams(), before);
  });
});

Deno.test("context: options are checked up front", () => {
  const bad = [
    { level: 10 },
    { memLevel: 0 },
    { threshold: -1 },
    { maxMessageSize: -1 },
    { idleDecompressors: 1.5 },
  ];
  for (const options of bad) {
    assert.throws(
      () => new DeflateContext(options),
      (e: unknown) => e instanceof FdwsError && e.code === "INVALID_OPTIONS",
      JSON.stringify(options),
    );
  }
});

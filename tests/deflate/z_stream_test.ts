/**
 * The zlib stream wrapper: addresses, staged and pinned input, init failures, ending once,
 * use after end, and the live-stream count.
 */

import assert from "node:assert/strict";
import {
  addressOf,
  liveStreams,
  STAGING_BYTES,
  ZStream,
  ZStreamError,
} from "../../deflate/z_stream.ts";
import { Z_OK, Z_SYNC_FLUSH } from "../../ffi/zlib.ts";
import { FdwsError } from "../../errors.ts";
import { filled, toHex, utf8 } from "../fixtures/bytes.ts";

Deno.test("z_stream: addresses", async (t) => {
  await t.step("a subarray's address is offset by its byteOffset; empty is 0", () => {
    const buf = new Uint8Array(new ArrayBuffer(64));
    assert.equal(addressOf(buf.subarray(10)) - addressOf(buf), 10);
    assert.equal(addressOf(buf.subarray(64)), 0);
    assert.ok(Number.isSafeInteger(addressOf(buf)));
  });
});

Deno.test("z_stream: deflate and inflate with staged and pinned input", async (t) => {
  for (const size of [5, STAGING_BYTES, STAGING_BYTES + 1, STAGING_BYTES * 4]) {
    await t.step(`${size} bytes`, () => {
      const input = filled(size + 20, size);
      const deflater = ZStream.deflate(-1, 15, 8);
      const compressed = new Uint8Array(new ArrayBuffer(size * 2 + 64));
      deflater.setInput(input, 10, 10 + size);
      deflater.setOutput(compressed, 0, compressed.length);
      assert.equal(deflater.deflate(Z_SYNC_FLUSH), Z_OK);
      assert.equal(deflater.availIn, 0);
      const n = compressed.length - deflater.availOut;
      deflater.end();

      const inflater = ZStream.inflate(15);
      const out = new Uint8Array(new ArrayBuffer(size + 1));
      inflater.setInput(compressed, 0, n);
      inflater.setOutput(out, 0, out.length);
      assert.equal(inflater.inflate(Z_SYNC_FLUSH), Z_OK);
      assert.equal(out.length - inflater.availOut, size);
      assert.deepEqual(out.subarray(0, size), input.subarray(10, 10 + size));
      // Stopped right after the sync flush's empty stored block.
      assert.equal(inflater.dataType & 128, 128);
      inflater.end();
    });
  }

  await t.step("staged input with a suffix, and the limit of staging", () => {
    const deflater = ZStream.deflate(-1, 15, 8);
    const out = new Uint8Array(new ArrayBuffer(64));
    assert.equal(deflater.setStagedInput(utf8("xHell"), 1, 5, utf8("o")), true);
    deflater.setOutput(out, 0, out.length);
    assert.equal(deflater.deflate(Z_SYNC_FLUSH), Z_OK);
    assert.equal(
      toHex(out.subarray(0, out.length - deflater.availOut)),
      "f2 48 cd c9 c9 07 00 00 00 ff ff",
    );
    const big = new Uint8Array(STAGING_BYTES);
    assert.equal(deflater.setStagedInput(big, 0, STAGING_BYTES - 3, utf8("abcd")), false);
    deflater.end();
  });
});

Deno.test("z_stream: lifetime", async (t) => {
  await t.step("init failure throws ZLIB_INIT_FAILED and counts nothing", () => {
    const before = liveStreams();
    // zlib refuses windowBits 8 for raw deflate (the compressor maps it to 9).
    assert.throws(
      () => ZStream.deflate(-1, 8, 8),
      (e: unknown) =>
        e instanceof ZStreamError && e instanceof FdwsError && e.code === "ZLIB_INIT_FAILED",
    );
    assert.throws(() => ZStream.inflate(16), ZStreamError);
    assert.equal(liveStreams(), before);
  });

  await t.step("end once, counted once; use after end throws", () => {
    const before = liveStreams();
    const a = ZStream.deflate(1, 9, 1);
    const b = ZStream.inflate(8);
    assert.equal(liveStreams(), before + 2);
    a.end();
    a.end();
    b.end();
    assert.equal(a.ended && b.ended, true);
    assert.equal(liveStreams(), before);
    assert.throws(
      () => a.deflate(Z_SYNC_FLUSH),
      (e: unknown) => e instanceof FdwsError && e.code === "ZLIB_STREAM_ENDED",
    );
    assert.throws(() => b.inflate(Z_SYNC_FLUSH), ZStreamError);
    assert.throws(() => b.reset(), ZStreamError);
  });
});

/**
 * The permessage-deflate compressor: the RFC 7692 §7.2.3 bytes, round trips through
 * node:zlib's raw inflate for every window size with and without context takeover, the
 * 8-bit window (compressed with zlib's 9) decoded with a 256-byte window, large and
 * incompressible input, and the stream's lifetime.
 */

import assert from "node:assert/strict";
import nodeZlib from "node:zlib";
import { Buffer } from "node:buffer";
import { Compressor } from "../../deflate/compressor.ts";
import { Decompressor } from "../../deflate/decompressor.ts";
import { liveStreams, STAGING_BYTES } from "../../deflate/z_stream.ts";
import { FdwsError } from "../../errors.ts";
import { concat, filled, hex, toHex, utf8 } from "../fixtures/bytes.ts";

const TAIL = hex("00 00 ff ff");

/** The compressed payload of the last `compress`, copied out of the shared buffer. */
function compressed(c: Compressor, data: Uint8Array, start?: number, end?: number): Uint8Array {
  const n = c.compress(data, start, end);
  return c.output.slice(0, n);
}

/** node:zlib's raw inflate of payloads with their tails put back, one continuous stream. */
function nodeInflate(payloads: Uint8Array[], windowBits = 15): Uint8Array {
  const input = concat(...payloads.flatMap((p) => [p, TAIL]));
  return new Uint8Array(nodeZlib.inflateRawSync(Buffer.from(input), {
    windowBits,
    finishFlush: nodeZlib.constants.Z_SYNC_FLUSH,
  }));
}

/** Messages of every kind the round trips use: text, repetitive, random, empty, large. */
function messages(): Uint8Array[] {
  const repetitive = new Uint8Array(5000);
  for (let i = 0; i < repetitive.length; i++) repetitive[i] = "abcabd"[i % 6].charCodeAt(0);
  // Repeats at distances 250..300: beyond a 256-byte window for half of them.
  const distant = filled(600, 7);
  distant.set(distant.subarray(0, 300), 300);
  return [
    utf8('{"type":"chat","user":"ada","text":"hello, world"}'),
    utf8('{"type":"chat","user":"bob","text":"hello, world"}'),
    new Uint8Array(0),
    repetitive,
    filled(3000, 11),
    distant,
    utf8("Hello"),
    filled(STAGING_BYTES + 1000, 5), // passed by address, not staged
  ];
}

Deno.test("compressor: RFC 7692 §7.2.3 examples", async (t) => {
  await t.step('§7.2.3.1: "Hello" in one compressed block', () => {
    const c = new Compressor({ noContextTakeover: true });
    assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 48 cd c9 c9 07 00");
    // No context takeover: the second message compresses alone again.
    assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 48 cd c9 c9 07 00");
    c.free();
  });

  await t.step('§7.2.3.2: the second "Hello" refers to the first through the window', () => {
    const c = new Compressor();
    assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 48 cd c9 c9 07 00");
    assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 00 11 00 00");
    c.reset();
    assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 48 cd c9 c9 07 00");
    c.free();
  });

  await t.step("§7.2.1: an empty message is one empty stored block without its tail", () => {
    for (const noContextTakeover of [false, true]) {
      const c = new Compressor({ noContextTakeover });
      assert.equal(toHex(compressed(c, new Uint8Array(0))), "00");
      assert.equal(c.allocated, false, "no zlib stream for an empty message");
      assert.equal(toHex(compressed(c, utf8("Hello"))), "f2 48 cd c9 c9 07 00");
      assert.equal(toHex(compressed(c, new Uint8Array(0))), "00");
      // Twice in a row: zlib itself would make no progress on the second empty flush.
      assert.equal(toHex(compressed(c, new Uint8Array(0))), "00");
      const second = compressed(c, utf8("Hello"));
      assert.equal(toHex(second), noContextTakeover ? "f2 48 cd c9 c9 07 00" : "f2 00 11 00 00");
      c.free();
    }
  });
});

Deno.test("compressor: round trips through node:zlib", async (t) => {
  for (let windowBits = 8; windowBits <= 15; windowBits++) {
    for (const noContextTakeover of [false, true]) {
      await t.step(`windowBits ${windowBits}, noContextTakeover ${noContextTakeover}`, () => {
        const c = new Compressor({ windowBits, noContextTakeover, memLevel: 1 + (windowBits % 9) });
        const inputs = messages();
        const payloads = inputs.map((m) => compressed(c, m));
        c.free();
        if (noContextTakeover) {
          inputs.forEach((m, i) => assert.deepEqual(nodeInflate([payloads[i]]), m, `message ${i}`));
        } else {
          assert.deepEqual(nodeInflate(payloads), concat(...inputs));
        }
      });
    }
  }

  await t.step("context takeover pays: a repeated message shrinks", () => {
    const c = new Compressor();
    const m = utf8('{"type":"chat","user":"ada","text":"the quick brown fox jumps"}');
    const first = compressed(c, m).length;
    const second = compressed(c, m).length;
    c.free();
    assert.ok(second < first / 3, `${second} vs ${first}`);
  });

  await t.step("level and memLevel are passed on", () => {
    const m = concat(...messages());
    const stored = new Compressor({ level: 0, noContextTakeover: true });
    const best = new Compressor({ level: 9, noContextTakeover: true });
    const storedLength = stored.compress(m);
    const bestLength = best.compress(m);
    assert.ok(storedLength > m.length, "level 0 stores");
    assert.ok(bestLength < m.length, "level 9 compresses");
    stored.free();
    best.free();
  });

  await t.step("large incompressible input grows the output buffer", () => {
    const c = new Compressor();
    const m = filled(3 * 1024 * 1024 + 17, 3);
    const out = compressed(c, m);
    assert.ok(out.length > m.length && out.length < m.length + 1024);
    assert.deepEqual(nodeInflate([out]), m);
    // And the next, small message still works from a fresh, small buffer.
    assert.deepEqual(nodeInflate([out, compressed(c, utf8("after"))]), concat(m, utf8("after")));
    assert.ok(c.output.length <= 1024 * 1024);
    c.free();
  });

  await t.step("a range of a larger buffer, staged and by address", () => {
    const c = new Compressor({ noContextTakeover: true });
    const big = filled(STAGING_BYTES * 3, 9);
    for (const [start, end] of [[5, 1005], [7, STAGING_BYTES * 2 + 3], [0, big.length]]) {
      assert.deepEqual(nodeInflate([compressed(c, big, start, end)]), big.subarray(start, end));
    }
    c.free();
  });
});

Deno.test("compressor: windowBits 8 runs zlib's 9 and stays within a 256-byte window", () => {
  // zlib checks distances against its window only for history from earlier inflate calls,
  // so the test refers across messages: message 2 repeats message 1, 300 bytes back.
  const first = filled(300, 21);
  const run = (windowBits: number): string => {
    const c = new Compressor({ windowBits });
    const d = new Decompressor({ windowBits: 8 });
    const results: string[] = [];
    for (const m of [first, first]) {
      const n = c.compress(m);
      const r = d.push(c.output, 0, n, true);
      results.push(r);
      if (r === "done") assert.deepEqual(d.output.subarray(0, d.outputLength), m);
    }
    c.free();
    d.free();
    return results.join(" ");
  };
  assert.equal(run(8), "done done");
  // The same messages from a 1 KiB window refer 300 bytes back, which a 256-byte window
  // cannot resolve: the check has teeth.
  assert.equal(run(10), "done invalid");
});

Deno.test("compressor: lifetime", async (t) => {
  await t.step("the zlib stream is created on the first message and freed once", () => {
    const before = liveStreams();
    const c = new Compressor();
    assert.equal(c.allocated, false);
    assert.equal(liveStreams(), before);
    c.compress(utf8("x"));
    assert.equal(c.allocated, true);
    assert.equal(liveStreams(), before + 1);
    c.free();
    c.free();
    assert.equal(c.freed, true);
    assert.equal(c.allocated, false);
    assert.equal(liveStreams(), before);
    c.reset(); // harmless after free
    assert.throws(
      () => c.compress(utf8("x")),
      (e: unknown) => e instanceof FdwsError && e.code === "ZLIB_STREAM_ENDED",
    );
  });

  await t.step("a compressor never used costs no stream to free", () => {
    const before = liveStreams();
    new Compressor().free();
    assert.equal(liveStreams(), before);
  });

  await t.step("options out of range are refused", () => {
    const bad = [
      { windowBits: 7 },
      { windowBits: 16 },
      { windowBits: 12.5 },
      { memLevel: 0 },
      { memLevel: 10 },
      { level: -2 },
      { level: 10 },
    ];
    for (const options of bad) {
      assert.throws(
        () => new Compressor(options),
        (e: unknown) => e instanceof FdwsError && e.code === "INVALID_OPTIONS",
        JSON.stringify(options),
      );
    }
  });
});

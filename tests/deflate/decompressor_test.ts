/**
 * The permessage-deflate decompressor: the RFC 7692 §7.2.3 payloads, messages compressed by
 * node:zlib (with and without context takeover, every window size) fed whole, byte by byte
 * and in seeded random fragments, decompressors interleaving partial messages, the size
 * limit to the byte, a 1 GiB decompression bomb, invalid data, and the stream's lifetime
 * (including the finalizer safety net, in a child process with the GC exposed).
 */

import assert from "node:assert/strict";
import nodeZlib from "node:zlib";
import { Buffer } from "node:buffer";
import { Decompressor, type InflateResult } from "../../deflate/decompressor.ts";
import { Compressor } from "../../deflate/compressor.ts";
import { liveStreams, STAGING_BYTES } from "../../deflate/z_stream.ts";
import { FdwsError } from "../../errors.ts";
import { chunkings } from "../fixtures/chunking.ts";
import { concat, filled, hex, utf8 } from "../fixtures/bytes.ts";

const TAIL = hex("00 00 ff ff");
const decoder = new TextDecoder();

/** Feeds `payload` in fragments of `sizes` (an empty array: one empty fragment). */
function feed(d: Decompressor, payload: Uint8Array, sizes: readonly number[]): InflateResult {
  if (sizes.length === 0) return d.push(payload, 0, 0, true);
  let offset = 0;
  let result: InflateResult = "more";
  for (let i = 0; i < sizes.length; i++) {
    // Each fragment in a fresh buffer with other bytes around it.
    const buf = new Uint8Array(sizes[i] + 6).fill(0xee);
    buf.set(payload.subarray(offset, offset + sizes[i]), 3);
    result = d.push(buf, 3, 3 + sizes[i], i === sizes.length - 1);
    offset += sizes[i];
    if (result !== "more") return result;
  }
  return result;
}

/** The inflated message after "done", copied out of the shared buffer. */
function message(d: Decompressor): Uint8Array {
  return d.output.slice(0, d.outputLength);
}

/** node:zlib's raw deflate of independent messages: sync flush, tail stripped. */
function nodeDeflate(m: Uint8Array, windowBits = 15): Uint8Array {
  const out = nodeZlib.deflateRawSync(Buffer.from(m), {
    windowBits,
    finishFlush: nodeZlib.constants.Z_SYNC_FLUSH,
  });
  assert.deepEqual(new Uint8Array(out.subarray(out.length - 4)), TAIL);
  return new Uint8Array(out.subarray(0, out.length - 4));
}

/** node:zlib's raw deflate of consecutive messages sharing one window (context takeover). */
async function nodeDeflateStream(inputs: Uint8Array[], windowBits = 15): Promise<Uint8Array[]> {
  const stream = nodeZlib.createDeflateRaw({ windowBits });
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const out: Uint8Array[] = [];
  for (const m of inputs) {
    stream.write(Buffer.from(m));
    await new Promise<void>((resolve) => stream.flush(nodeZlib.constants.Z_SYNC_FLUSH, resolve));
    const all = new Uint8Array(Buffer.concat(chunks.splice(0)));
    assert.deepEqual(all.subarray(all.length - 4), TAIL);
    out.push(all.slice(0, all.length - 4));
  }
  stream.close();
  return out;
}

function inputs(): Uint8Array[] {
  const repetitive = utf8('{"op":"publish","topic":"prices","value":42}'.repeat(200));
  return [
    utf8("Hello"),
    utf8('{"op":"publish","topic":"prices","value":43}'),
    new Uint8Array(0),
    repetitive,
    filled(2000, 3),
    filled(STAGING_BYTES + 500, 4),
  ];
}

Deno.test("decompressor: RFC 7692 §7.2.3 payloads", async (t) => {
  const d = new Decompressor({ maxMessageSize: 1000 });
  const cases: [string, string][] = [
    ["§7.2.3.1 one compressed block", "f2 48 cd c9 c9 07 00"],
    ["§7.2.3.3 a block with no compression", "00 05 00 fa ff 48 65 6c 6c 6f 00"],
    ["§7.2.3.4 a block with BFINAL set, then an empty header", "f3 48 cd c9 c9 07 00 00"],
    ["§7.2.3.5 two blocks in one message", "f2 48 05 00 00 00 ff ff ca c9 c9 07 00"],
  ];
  for (const [name, payload] of cases) {
    await t.step(`${name}: every split into fragments`, () => {
      const bytes = hex(payload);
      for (let cut = 0; cut <= bytes.length; cut++) {
        for (const sizes of [[cut, bytes.length - cut], Array(bytes.length).fill(1)]) {
          assert.equal(feed(d, bytes, sizes), "done", `${sizes}`);
          assert.equal(decoder.decode(message(d)), "Hello", `${sizes}`);
        }
      }
    });
  }

  await t.step("§7.2.3.2 the second message refers to the first", () => {
    const shared = new Decompressor();
    assert.equal(feed(shared, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
    assert.equal(decoder.decode(message(shared)), "Hello");
    assert.equal(feed(shared, hex("f2 00 11 00 00"), [2, 3]), "done");
    assert.equal(decoder.decode(message(shared)), "Hello");
    shared.free();
  });

  await t.step("without context takeover the window is gone after each message", () => {
    const fresh = new Decompressor({ noContextTakeover: true });
    assert.equal(feed(fresh, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
    assert.equal(feed(fresh, hex("f2 00 11 00 00"), [5]), "invalid");
    fresh.free();
  });

  await t.step("a final block without the empty header, then context takeover", () => {
    const shared = new Decompressor();
    // Not what the RFC shows (it adds 00), but the stream must still continue cleanly.
    assert.equal(feed(shared, hex("f3 48 cd c9 c9 07 00"), [7]), "done");
    assert.equal(decoder.decode(message(shared)), "Hello");
    assert.equal(feed(shared, hex("f2 00 11 00 00"), [5]), "done");
    assert.equal(decoder.decode(message(shared)), "Hello");
    shared.free();
  });

  await t.step("empty messages: `00`, and an empty payload", () => {
    assert.equal(feed(d, hex("00"), [1]), "done");
    assert.equal(d.outputLength, 0);
    assert.equal(feed(d, new Uint8Array(0), []), "done");
    assert.equal(d.outputLength, 0);
    // Empty fragments anywhere in a message change nothing.
    const hello = hex("f2 48 cd c9 c9 07 00");
    assert.equal(d.push(hello, 0, 0, false), "more");
    assert.equal(d.push(hello, 0, 3, false), "more");
    assert.equal(d.push(hello, 3, 3, false), "more");
    assert.equal(d.push(hello, 3, 7, false), "more");
    assert.equal(d.push(hello, 7, 7, true), "done");
    assert.equal(decoder.decode(message(d)), "Hello");
  });
  d.free();
});

Deno.test("decompressor: node:zlib's messages at every window size", async (t) => {
  for (let windowBits = 8; windowBits <= 15; windowBits++) {
    for (const noContextTakeover of [false, true]) {
      await t.step(`windowBits ${windowBits}, noContextTakeover ${noContextTakeover}`, async () => {
        const messages = inputs();
        // node runs windowBits 8 as 9, within a 256-byte window like zlib itself.
        const payloads = noContextTakeover
          ? messages.map((m) => nodeDeflate(m, Math.max(windowBits, 9)))
          : await nodeDeflateStream(messages, Math.max(windowBits, 9));
        const d = new Decompressor({ windowBits, noContextTakeover });
        payloads.forEach((payload, i) => {
          const sizes = chunkings(payload.length, windowBits * 100 + i)[2 + (i % 6)].sizes;
          assert.equal(feed(d, payload, sizes), "done", `message ${i}`);
          assert.deepEqual(message(d), messages[i], `message ${i}`);
        });
        d.free();
      });
    }
  }

  await t.step("every chunking of a message, whole, bytewise and random", () => {
    const m = utf8("permessage-deflate ".repeat(50) + "end");
    const payload = nodeDeflate(m);
    const d = new Decompressor({ noContextTakeover: true });
    for (const { name, sizes } of chunkings(payload.length, 77)) {
      assert.equal(feed(d, payload, sizes), "done", name);
      assert.deepEqual(message(d), m, name);
    }
    d.free();
  });

  await t.step("our compressor, context takeover, large messages in fragments", () => {
    const c = new Compressor();
    const d = new Decompressor();
    for (const [i, m] of [...inputs(), filled(300_000, 8), filled(300_000, 8)].entries()) {
      const n = c.compress(m);
      const payload = c.output.slice(0, n);
      assert.equal(feed(d, payload, chunkings(n, i)[3].sizes), "done", `message ${i}`);
      assert.deepEqual(message(d), m, `message ${i}`);
    }
    c.free();
    d.free();
  });
});

Deno.test("decompressor: output that fills its buffer exactly", () => {
  // The buffer grows 16 KiB, 32 KiB, 64 KiB...: these sizes end with a full buffer, so zlib
  // is called once more with no input left, a call that makes no progress.
  const d = new Decompressor();
  for (const size of [16384, 32768, 65536, 262144, 16383, 16385]) {
    const m = filled(size, size);
    for (const sizes of [[0], [1]]) {
      const payload = nodeDeflate(m);
      sizes[0] = payload.length;
      assert.equal(feed(d, payload, sizes), "done", `${size}`);
      assert.deepEqual(message(d), m, `${size}`);
    }
    const payload = nodeDeflate(m);
    assert.equal(feed(d, payload, chunkings(payload.length, size)[2].sizes), "done", `${size}`);
    assert.deepEqual(message(d), m, `${size}`);
  }
  d.free();
});

Deno.test("decompressor: messages in progress on several decompressors at once", () => {
  // Partial output leaves the shared buffer when a push ends mid-message; a message that
  // completes within one push is in the shared buffer, overwritten by the next push.
  const a = new Decompressor();
  const b = new Decompressor();
  const ma = filled(40_000, 1);
  const mb = utf8("b".repeat(50_000));
  const pa = nodeDeflate(ma);
  const pb = nodeDeflate(mb);
  const half = Math.floor(pa.length / 2);
  assert.equal(a.push(pa, 0, half, false), "more");
  assert.ok(a.inMessage && a.bytesInflated > 0);
  assert.equal(b.push(pb, 0, pb.length, true), "done");
  assert.deepEqual(message(b), mb);
  assert.equal(b.push(pb, 0, 10, false), "more");
  assert.equal(a.push(pa, half, pa.length, true), "done");
  assert.deepEqual(message(a), ma);
  assert.equal(b.push(pb, 10, pb.length, true), "done");
  assert.deepEqual(message(b), mb);
  a.free();
  b.free();
});

Deno.test("decompressor: size limit", async (t) => {
  const m = filled(10_000, 2);
  const payload = nodeDeflate(m);
  await t.step("exactly the limit passes, one byte less refuses", () => {
    for (const sizes of [[payload.length], chunkings(payload.length, 5)[4].sizes]) {
      const atLimit = new Decompressor({ maxMessageSize: m.length, noContextTakeover: true });
      assert.equal(feed(atLimit, payload, sizes), "done");
      assert.deepEqual(message(atLimit), m);
      const below = new Decompressor({ maxMessageSize: m.length - 1, noContextTakeover: true });
      assert.equal(feed(below, payload, sizes), "too-big");
      assert.equal(below.inMessage, false);
      // The stream was reset: the decompressor serves the next message.
      assert.equal(feed(below, nodeDeflate(utf8("small")), [4, 3]), "done");
      assert.equal(decoder.decode(message(below)), "small");
      atLimit.free();
      below.free();
    }
  });

  await t.step("limit 0 allows only empty messages; Infinity allows anything", () => {
    const zero = new Decompressor({ maxMessageSize: 0 });
    assert.equal(feed(zero, hex("00"), [1]), "done");
    assert.equal(feed(zero, hex("f2 48 cd c9 c9 07 00"), [7]), "too-big");
    zero.free();
    const unlimited = new Decompressor({ maxMessageSize: Infinity });
    assert.equal(feed(unlimited, payload, [payload.length]), "done");
    assert.deepEqual(message(unlimited), m);
    unlimited.free();
  });

  await t.step("invalid limits are refused", () => {
    for (const maxMessageSize of [-1, 1.5, NaN, 2 ** 60]) {
      assert.throws(
        () => new Decompressor({ maxMessageSize }),
        (e: unknown) => e instanceof FdwsError && e.code === "INVALID_OPTIONS",
      );
    }
    for (const windowBits of [7, 16, 9.5]) {
      assert.throws(
        () => new Decompressor({ windowBits }),
        (e: unknown) => e instanceof FdwsError && e.code === "INVALID_OPTIONS",
      );
    }
  });
});

Deno.test("decompressor: a 1 GiB decompression bomb is refused within the limit", async (t) => {
  // 1 MiB of zeros compressed after 1 MiB of zeros refers only to zeros, so one such block
  // repeated after the first is a valid stream of N MiB of zeros (each block ends with a
  // sync flush whose tail goes back in between).
  const c = new Compressor();
  const zeros = new Uint8Array(1 << 20);
  let n = c.compress(zeros);
  const first = c.output.slice(0, n);
  n = c.compress(zeros);
  const next = c.output.slice(0, n);
  c.free();
  const bomb = (mebibytes: number): Uint8Array =>
    concat(first, ...Array.from({ length: mebibytes - 1 }, () => concat(TAIL, next)));

  await t.step("the construction inflates to what it claims (8 MiB)", () => {
    const d = new Decompressor({ maxMessageSize: 8 << 20 });
    const payload = bomb(8);
    assert.equal(feed(d, payload, [payload.length]), "done");
    assert.equal(d.outputLength, 8 << 20);
    assert.ok(message(d).every((b) => b === 0));
    d.free();
  });

  const payload = bomb(1024);
  const limit = 16 << 20;
  await t.step("what a refused bomb grew is freed at once, not at a collection", () => {
    const d = new Decompressor({ maxMessageSize: limit });
    assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
    const small = d.output; // the shared output buffer, before the bomb grows it
    assert.equal(feed(d, payload, [payload.length]), "too-big");
    // Every doubling step detached the buffer it outgrew, and the refusal the last one.
    assert.equal(small.byteLength, 0);
    assert.ok(d.output.length <= 1 << 20, `${d.output.length} bytes kept`);
    assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
    assert.equal(decoder.decode(message(d)), "Hello");
    d.free();
  });
  for (const fragment of [payload.length, 64 * 1024, 1000]) {
    await t.step(`${payload.length} bytes for 1 GiB, in ${fragment}-byte fragments`, () => {
      const d = new Decompressor({ maxMessageSize: limit });
      const rssBefore = Deno.memoryUsage().rss;
      let result: InflateResult = "more";
      let inflated = 0;
      for (let p = 0; p < payload.length && result === "more"; p += fragment) {
        const end = Math.min(payload.length, p + fragment);
        result = d.push(payload, p, end, end === payload.length);
        inflated = Math.max(inflated, d.bytesInflated);
      }
      assert.equal(result, "too-big");
      assert.ok(inflated <= limit, `${inflated}`);
      // Buffers never exceed limit + 1 bytes: the whole 1 GiB was never held (generous
      // bound for the garbage of the doubling steps).
      const grown = Deno.memoryUsage().rss - rssBefore;
      assert.ok(grown < 8 * limit, `RSS grew by ${grown} bytes`);
      // Still usable (a shared decompressor serves other connections).
      assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
      d.free();
    });
  }
});

Deno.test("decompressor: invalid data and aborted messages", async (t) => {
  const d = new Decompressor();
  await t.step("a reserved block type is invalid; the next message inflates", () => {
    assert.equal(feed(d, hex("07 00 00"), [3]), "invalid");
    assert.equal(d.inMessage, false);
    assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
  });

  await t.step("garbage found in a later fragment is invalid", () => {
    assert.equal(d.push(hex("f2 48"), 0, 2, false), "more");
    assert.equal(d.push(hex("ff ff ff ff ff ff"), 0, 6, true), "invalid");
    assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
  });

  await t.step("abort drops a message in progress", () => {
    assert.equal(d.push(hex("f2 48 cd"), 0, 3, false), "more");
    assert.equal(d.inMessage, true);
    d.abort();
    assert.equal(d.inMessage, false);
    assert.equal(feed(d, hex("f2 48 cd c9 c9 07 00"), [7]), "done");
    assert.equal(decoder.decode(message(d)), "Hello");
    d.abort(); // nothing in progress: no effect
  });
  d.free();
});

Deno.test("decompressor: lifetime", async (t) => {
  await t.step("the stream is created on the first message and freed once", () => {
    const before = liveStreams();
    const d = new Decompressor();
    assert.equal(d.allocated, false);
    d.push(hex("f2 48"), 0, 2, false);
    assert.equal(d.allocated, true);
    assert.equal(liveStreams(), before + 1);
    d.free();
    d.free();
    d.abort();
    assert.equal(d.freed, true);
    assert.equal(d.inMessage, false);
    assert.equal(liveStreams(), before);
    assert.throws(
      () => d.push(hex("00"), 0, 1, true),
      (e: unknown) => e instanceof FdwsError && e.code === "ZLIB_STREAM_ENDED",
    );
  });

  await t.step("streams dropped without free() are ended by the finalizer", async () => {
    const script = new URL("../fixtures/deflate/finalizer.ts", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", "--v8-flags=--expose-gc", script.pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = decoder.decode(out.stdout).trim();
    assert.ok(out.success, decoder.decode(out.stderr));
    assert.equal(text, "live before 200, after 0");
  });
});

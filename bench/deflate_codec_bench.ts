// Cost of permessage-deflate per message (no sockets): compress and inflate of chat-like JSON
// and of 16 KiB and 1 MiB messages, shared (no context takeover: reset after every message)
// and dedicated (context takeover), against node:zlib's synchronous raw deflate/inflate with
// the same flush, as a reference for the zlib work itself.
//
//   deno run --allow-ffi bench/deflate_codec_bench.ts [seconds-per-case]
import nodeZlib from "node:zlib";
import { Buffer } from "node:buffer";
import { Compressor } from "../deflate/compressor.ts";
import { Decompressor } from "../deflate/decompressor.ts";

const seconds = Number(Deno.args[0] ?? "1");
const encoder = new TextEncoder();

function chat(i: number): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      type: "chat",
      room: "lobby",
      seq: i,
      user: `user${i % 7}`,
      text: "see you at the meeting at ten",
    }),
  );
}

function prices(size: number): Uint8Array {
  const items = [];
  let length = 2;
  for (let i = 0; length < size; i++) {
    const item = {
      symbol: `SYM${i % 500}`,
      bid: (100 + ((i * 37) % 1000) / 10).toFixed(2),
      ask: (101 + ((i * 41) % 1000) / 10).toFixed(2),
    };
    items.push(item);
    length += JSON.stringify(item).length + 1;
  }
  return encoder.encode(JSON.stringify(items)).subarray(0, size);
}

function measure(name: string, bytes: number, op: () => void): void {
  for (let i = 0; i < 200; i++) op();
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < 50; i++) op();
    n += 50;
  }
  const elapsed = (performance.now() - start) / 1000;
  const us = (elapsed / n) * 1e6;
  const mbs = (bytes * n) / elapsed / 1e6;
  console.log(`| ${name} | ${us.toFixed(2)} | ${mbs.toFixed(0)} |`);
}

const TAIL = new Uint8Array([0, 0, 0xff, 0xff]);

console.log("| case | µs per message | MB/s (uncompressed) |");
console.log("| --- | ---: | ---: |");
const chats = Array.from({ length: 64 }, (_, i) => chat(i));
const chatBytes = chats[0].length;
for (
  const [label, m] of [["chat JSON", chats[0]], ["16 KiB JSON", prices(16384)], [
    "1 MiB JSON",
    prices(1 << 20),
  ]] as const
) {
  const size = m.length;
  let k = 0;
  const pick = (): Uint8Array => (label === "chat JSON" ? chats[k++ & 63] : m);
  for (const noContextTakeover of [true, false]) {
    const mode = noContextTakeover ? "shared" : "dedicated";
    const c = new Compressor({ noContextTakeover });
    measure(
      `compress ${label} (${size} B), ${mode}`,
      label === "chat JSON" ? chatBytes : size,
      () => {
        c.compress(pick());
      },
    );
    // Payloads of a stream to inflate in order (context takeover) or independently.
    const cc = new Compressor({ noContextTakeover });
    const payloads = Array.from({ length: 64 }, () => {
      const n = cc.compress(pick());
      return cc.output.slice(0, n);
    });
    cc.free();
    let d = new Decompressor({ noContextTakeover });
    let j = 0;
    measure(`inflate ${label}, ${mode}`, label === "chat JSON" ? chatBytes : size, () => {
      if (j === 64) {
        // Start the stream over so that context takeover stays consistent.
        j = 0;
        if (!noContextTakeover) {
          d.free();
          d = new Decompressor({ noContextTakeover });
        }
      }
      const p = payloads[j++];
      if (d.push(p, 0, p.length, true) !== "done") throw new Error("inflate failed");
    });
    d.free();
    c.free();
  }
  const options = { finishFlush: nodeZlib.constants.Z_SYNC_FLUSH };
  measure(`node:zlib deflateRawSync ${label}`, label === "chat JSON" ? chatBytes : size, () => {
    nodeZlib.deflateRawSync(Buffer.from(pick()), options);
  });
  const nodePayload = Buffer.concat([nodeZlib.deflateRawSync(Buffer.from(m), options), TAIL]);
  measure(`node:zlib inflateRawSync ${label}`, size, () => {
    nodeZlib.inflateRawSync(nodePayload, options);
  });
}

// Throughput of the pure frame layer (no sockets): parser frames/s and MB/s for masked
// client→server frames, encoder ops/s, and the idle size of a parser.
//
//   deno run --v8-flags=--expose-gc bench/frame_codec_bench.ts [seconds-per-case]
//
// The parser unmasks in place, so every round first copies the pristine masked bytes into the
// read buffer, as a socket read would; that memcpy is included in the numbers.
import { type FrameHandler, FrameParser } from "../protocol/frame/parser.ts";
import { encodeFrame, encodeMessage } from "../protocol/frame/encoder.ts";

const seconds = Number(Deno.args[0] ?? "1");

let messages = 0;
let bytesSeen = 0;
const handler: FrameHandler = {
  onMessage(data) {
    messages++;
    bytesSeen += data.length;
  },
  onPing() {},
  onPong() {},
  onClose() {},
  onFail(code, reason) {
    throw new Error(`unexpected failure ${code}: ${reason}`);
  },
};

function payloadOf(size: number, text: boolean): string | Uint8Array {
  if (text) return "x".repeat(size);
  return new Uint8Array(size).map((_, i) => i * 31);
}

/** A 64 KiB-ish read buffer full of masked frames of `size` payload bytes. */
function readBuffer(size: number, text: boolean, readSize: number): Uint8Array {
  const one = encodeFrame(text ? 0x1 : 0x2, payloadOf(size, text), { mask: true });
  const count = Math.max(1, Math.floor(readSize / one.length));
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(encodeFrame(text ? 0x1 : 0x2, payloadOf(size, text), { mask: true }));
  }
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}

function benchParser(name: string, pristine: Uint8Array, chunk = pristine.length): void {
  const parser = new FrameParser({ role: "server" });
  const work = new Uint8Array(pristine.length);
  const round = () => {
    work.set(pristine);
    for (let p = 0; p < work.length; p += chunk) {
      parser.push(work, p, Math.min(work.length, p + chunk), handler);
    }
  };
  for (let i = 0; i < 200; i++) round();
  messages = 0;
  bytesSeen = 0;
  const start = performance.now();
  let elapsed = 0;
  while ((elapsed = performance.now() - start) < seconds * 1000) {
    for (let i = 0; i < 20; i++) round();
  }
  const perSecond = messages / (elapsed / 1000);
  const mbps = bytesSeen / (elapsed / 1000) / 1e6;
  console.log(
    `${name.padEnd(44)} ${(perSecond / 1e6).toFixed(2).padStart(7)} M msg/s ${
      mbps.toFixed(0).padStart(6)
    } MB/s payload`,
  );
}

function benchOps(name: string, fn: () => unknown): void {
  for (let i = 0; i < 20000; i++) fn();
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  let sink: unknown;
  while ((elapsed = performance.now() - start) < seconds * 1000) {
    for (let i = 0; i < 1000; i++) sink = fn();
    ops += 1000;
  }
  if (sink === null) console.log("");
  console.log(
    `${name.padEnd(44)} ${(ops / (elapsed / 1000) / 1e6).toFixed(2).padStart(7)} M ops/s`,
  );
}

console.log(`Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${seconds}s per case\n`);
console.log("Parser (server role, masked frames, 64 KiB reads):");
for (const size of [32, 1024]) {
  benchParser(`  ${size} B text frames`, readBuffer(size, true, 65536));
  benchParser(`  ${size} B binary frames`, readBuffer(size, false, 65536));
}
benchParser("  64 KiB binary frames (one per read)", readBuffer(65536, false, 65536));
benchParser("  64 KiB text frames (one per read)", readBuffer(65536, true, 65536));
benchParser(
  "  1 MiB text frame in 64 KiB reads",
  readBuffer(1024 * 1024, true, 0),
  65536,
);
benchParser(
  "  1 MiB text in 64 B fragments, 64 KiB reads",
  encodeMessage("x".repeat(1024 * 1024), { mask: true, fragmentSize: 64 }),
  65536,
);
benchParser(
  "  1 MiB binary in 4 KiB fragments, 64 KiB reads",
  encodeMessage(new Uint8Array(1024 * 1024), { mask: true, fragmentSize: 4096 }),
  65536,
);

console.log("\nEncoder:");
const text32 = "x".repeat(32);
const text1k = "x".repeat(1024);
const mixed1k = "é€".repeat(205);
const bin32 = new Uint8Array(32);
const bin1k = new Uint8Array(1024);
benchOps("  encodeFrame text 32 B (server)", () => encodeFrame(0x1, text32));
benchOps("  encodeFrame text 1 KiB (server)", () => encodeFrame(0x1, text1k));
benchOps("  encodeFrame non-ASCII text ~1 KiB (server)", () => encodeFrame(0x1, mixed1k));
benchOps("  encodeFrame binary 32 B (server)", () => encodeFrame(0x2, bin32));
benchOps("  encodeFrame binary 1 KiB (server)", () => encodeFrame(0x2, bin1k));
benchOps(
  "  encodeFrame text 32 B (client, masked)",
  () => encodeFrame(0x1, text32, { mask: true }),
);
benchOps(
  "  encodeFrame binary 1 KiB (client, masked)",
  () => encodeFrame(0x2, bin1k, { mask: true }),
);

console.log("\nIdle memory:");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.log("  (run with --v8-flags=--expose-gc to measure)");
} else {
  const settle = () => {
    for (let i = 0; i < 4; i++) gc();
    return Deno.memoryUsage().heapUsed;
  };
  const count = 100_000;
  const keep: FrameParser[] = new Array(count);
  const before = settle();
  for (let i = 0; i < count; i++) keep[i] = new FrameParser({ role: "server" });
  const after = settle();
  console.log(`  ${((after - before) / count).toFixed(0)} bytes per idle FrameParser`);
  // Parsers that have seen traffic return to the same footprint between messages.
  const frames = readBuffer(1024, true, 65536);
  for (const parser of keep.slice(0, 1000)) {
    parser.push(frames.slice(), 0, frames.length, handler);
  }
  const used = settle();
  console.log(
    `  heap delta after 1000 of them parsed 64 KiB: ${((used - after) / 1000).toFixed(0)} B each`,
  );
}

/**
 * Memory of permessage-deflate state, measured: resident memory (RSS) growth over 10,000
 * zlib streams per configuration, each configuration in a fresh child process, in three
 * phases:
 *   idle  streams initialised (deflateInit2/inflateInit2) and nothing else
 *   warm  one short message through each (what an idle connection that talked once holds)
 *   hot   one 64 KiB message through each (every table and the whole window touched)
 * plus the JavaScript heap of 10,000 sessions (the objects a connection holds).
 *
 *   deno run --allow-ffi --allow-run --allow-read bench/deflate_memory.ts [--count 10000]
 *
 * zlib's own estimate (zconf.h): deflate (1 << (windowBits + 2)) + (1 << (memLevel + 9))
 * bytes, inflate (1 << windowBits) + about 7 KiB. Pages malloc never touched do not count in
 * RSS, hence the phases.
 *
 * @module
 */

import { Compressor } from "../deflate/compressor.ts";
import { Decompressor } from "../deflate/decompressor.ts";
import { DeflateContext } from "../deflate/context.ts";
import { DeflateSession } from "../deflate/session.ts";
import { filled } from "../tests/fixtures/bytes.ts";

type Phase = "idle" | "warm" | "hot";

interface Config {
  kind: "deflate" | "inflate";
  windowBits: number;
  memLevel: number;
}

const CONFIGS: Config[] = [
  { kind: "deflate", windowBits: 15, memLevel: 8 },
  { kind: "deflate", windowBits: 15, memLevel: 9 },
  { kind: "deflate", windowBits: 13, memLevel: 6 },
  { kind: "deflate", windowBits: 12, memLevel: 5 },
  { kind: "deflate", windowBits: 10, memLevel: 3 },
  { kind: "deflate", windowBits: 9, memLevel: 1 },
  { kind: "inflate", windowBits: 15, memLevel: 0 },
  { kind: "inflate", windowBits: 13, memLevel: 0 },
  { kind: "inflate", windowBits: 12, memLevel: 0 },
  { kind: "inflate", windowBits: 9, memLevel: 0 },
];

function rss(): number {
  return Deno.memoryUsage().rss;
}

function settle(): void {
  // Let the allocator and V8 quiesce a little; the figures are differences of large sums.
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
}

function estimate(c: Config): number {
  return c.kind === "deflate"
    ? (1 << (c.windowBits + 2)) + (1 << (c.memLevel + 9))
    : (1 << c.windowBits) + 7 * 1024;
}

/** Child: one configuration, one phase; prints bytes per stream. */
function child(c: Config, phase: Phase, count: number): void {
  const short = new TextEncoder().encode(JSON.stringify({ type: "chat", text: "hello there" }));
  const big = filled(64 * 1024, 7);
  // Warm up the shared buffers, the FFI and the code paths before the baseline.
  const warmup = new Compressor();
  const m = warmup.compress(big);
  const payload = warmup.output.slice(0, m);
  warmup.free();
  new Decompressor().free();
  settle();
  const before = rss();
  const keep: Array<Compressor | Decompressor> = [];
  for (let i = 0; i < count; i++) {
    if (c.kind === "deflate") {
      const s = new Compressor({ windowBits: c.windowBits, memLevel: c.memLevel });
      // A compressor's zlib stream is created by its first message: "idle" compresses an
      // empty message plus one byte, which allocates and barely touches the state.
      s.compress(phase === "hot" ? big : phase === "warm" ? short : short.subarray(0, 1));
      keep.push(s);
    } else {
      const d = new Decompressor({ windowBits: c.windowBits });
      if (phase === "idle") d.push(payload, 0, 0, false); // allocates, inflates nothing
      else if (phase === "warm") {
        d.push(new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), 0, 7, true);
      } else d.push(payload, 0, payload.length, true);
      keep.push(d);
    }
  }
  settle();
  const after = rss();
  console.log(JSON.stringify({ perStream: (after - before) / count }));
  for (const s of keep) s.free();
}

/** Child: JavaScript heap of sessions (shared and dedicated, before any message). */
function sessions(count: number): void {
  const context = new DeflateContext();
  settle();
  const heapBefore = Deno.memoryUsage().heapUsed;
  const keep: DeflateSession[] = [];
  for (let i = 0; i < count; i++) {
    keep.push(
      new DeflateSession("server", {
        serverNoContextTakeover: i % 2 === 0,
        clientNoContextTakeover: i % 2 === 0,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 15,
      }, context),
    );
  }
  settle();
  const heap = (Deno.memoryUsage().heapUsed - heapBefore) / count;
  console.log(JSON.stringify({ heapPerSession: heap, kept: keep.length }));
  for (const s of keep) s.free();
  context.free();
}

async function run(args: string[]): Promise<Record<string, number>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`child failed: ${args.join(" ")}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

const args = Deno.args;
const countIndex = args.indexOf("--count");
const count = countIndex === -1 ? 10_000 : Number(args[countIndex + 1]);

if (args[0] === "--child") {
  const [, kind, windowBits, memLevel, phase] = args;
  child(
    { kind: kind as Config["kind"], windowBits: Number(windowBits), memLevel: Number(memLevel) },
    phase as Phase,
    count,
  );
} else if (args[0] === "--sessions") {
  sessions(count);
} else {
  console.log(`zlib streams, RSS growth per stream over ${count} streams (KiB)\n`);
  console.log("| stream | zlib estimate | idle | warm (short message) | hot (64 KiB message) |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const c of CONFIGS) {
    const cells: string[] = [];
    for (const phase of ["idle", "warm", "hot"] as const) {
      const r = await run([
        "--child",
        c.kind,
        String(c.windowBits),
        String(c.memLevel),
        phase,
        "--count",
        String(count),
      ]);
      cells.push((r.perStream / 1024).toFixed(1));
    }
    const name = c.kind === "deflate"
      ? `deflate windowBits ${c.windowBits}, memLevel ${c.memLevel}`
      : `inflate windowBits ${c.windowBits}`;
    console.log(`| ${name} | ${(estimate(c) / 1024).toFixed(1)} | ${cells.join(" | ")} |`);
  }
  const s = await run(["--sessions", "--count", String(count)]);
  console.log(
    `\nJavaScript heap per DeflateSession (no message yet): ${s.heapPerSession.toFixed(0)} B`,
  );
}

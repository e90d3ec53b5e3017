/**
 * The zlib binding: the z_stream layout per data model (offsets written out by hand from
 * zlib.h and the C alignment rules, never computed by the code under test), checked against
 * this system's C compiler when one is installed and against the running library through
 * the fields zlib itself writes; the library paths per system; the typed errors.
 */

import assert from "node:assert/strict";
import {
  type DataModel,
  Z_BUF_ERROR,
  Z_DATA_ERROR,
  Z_DEFAULT_STRATEGY,
  Z_DEFLATED,
  Z_OK,
  Z_STREAM,
  Z_SYNC_FLUSH,
  Z_VERSION_ERROR,
  zlib,
  zlibCandidates,
  ZlibUnavailableError,
  zStreamLayout,
} from "../../ffi/zlib.ts";
import { FdwsError } from "../../errors.ts";

// [next_in, avail_in, total_in, next_out, avail_out, total_out, msg, state, zalloc, zfree,
//  opaque, data_type, adler, reserved, sizeof]
const EXPECTED: Record<DataModel, number[]> = {
  // 8-byte pointers and uLong; each 4-byte uInt/int is followed by 4 bytes of padding.
  LP64: [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112],
  // Windows x64: 4-byte uLong packs after each uInt; 84 bytes rounded up to 8.
  LLP64: [0, 8, 12, 16, 24, 28, 32, 40, 48, 56, 64, 72, 76, 80, 88],
  // Everything 4 bytes.
  ILP32: [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56],
};

function offsets(model: DataModel): number[] {
  const l = zStreamLayout(model);
  return [
    l.nextIn,
    l.availIn,
    l.totalIn,
    l.nextOut,
    l.availOut,
    l.totalOut,
    l.msg,
    l.state,
    l.zalloc,
    l.zfree,
    l.opaque,
    l.dataType,
    l.adler,
    l.reserved,
    l.size,
  ];
}

/** Address of a buffer as a number (test-local; the library has its own). */
function address(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

function readU64(view: DataView, offset: number): number {
  return Number(view.getBigUint64(offset, true));
}

function writeU64(view: DataView, offset: number, value: number): void {
  view.setBigUint64(offset, BigInt(value), true);
}

/** Adler-32 (RFC 1950 §8), written out here to check the `adler` field. */
function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return (b * 65536 + a) >>> 0;
}

async function hasCompiler(): Promise<boolean> {
  try {
    const out = await new Deno.Command("cc", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

Deno.test("z_stream layout", async (t) => {
  for (const model of ["LP64", "LLP64", "ILP32"] as const) {
    await t.step(`${model}: offsets and size from zlib.h`, () => {
      assert.deepEqual(offsets(model), EXPECTED[model]);
    });
  }

  await t.step("this process is LP64", () => {
    assert.deepEqual(Z_STREAM, zStreamLayout("LP64"));
  });

  await t.step({
    name: "agrees with offsetof() of this system's C compiler",
    ignore: !(await hasCompiler()) || !(await Deno.stat("/usr/include/zlib.h").catch(() => null)),
    fn: async () => {
      const dir = await Deno.makeTempDir();
      try {
        const fields = [
          "next_in",
          "avail_in",
          "total_in",
          "next_out",
          "avail_out",
          "total_out",
          "msg",
          "state",
          "zalloc",
          "zfree",
          "opaque",
          "data_type",
          "adler",
          "reserved",
        ];
        const prints = fields.map((f) => `printf("%zu ", offsetof(z_stream, ${f}));`).join("\n");
        await Deno.writeTextFile(
          `${dir}/layout.c`,
          `#include <stddef.h>\n#include <stdio.h>\n#include <zlib.h>\n` +
            `int main(void) {\n${prints}\nprintf("%zu\\n", sizeof(z_stream));\nreturn 0;\n}\n`,
        );
        const build = await new Deno.Command("cc", {
          args: ["-o", `${dir}/layout`, `${dir}/layout.c`],
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.ok(build.success, new TextDecoder().decode(build.stderr));
        const run = await new Deno.Command(`${dir}/layout`, { stdout: "piped" }).output();
        const numbers = new TextDecoder().decode(run.stdout).trim().split(" ").map(Number);
        assert.deepEqual(numbers, offsets("LP64"));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
});

Deno.test("zlib binding against the running library", async (t) => {
  const { sym, version } = zlib();

  await t.step("zlib() opens once and reports a 1.x version", () => {
    assert.equal(zlib(), zlib());
    assert.match(zlib().versionText, /^1\./);
  });

  await t.step("init functions check sizeof(z_stream): ours passes, a wrong one is refused", () => {
    const ok = new Uint8Array(new ArrayBuffer(Z_STREAM.size));
    assert.equal(sym.inflateInit2_(ok, -15, version, Z_STREAM.size), Z_OK);
    assert.equal(sym.inflateEnd(ok), Z_OK);
    const bad = new Uint8Array(new ArrayBuffer(Z_STREAM.size));
    assert.equal(sym.inflateInit2_(bad, -15, version, Z_STREAM.size - 8), Z_VERSION_ERROR);
    assert.equal(
      sym.deflateInit2_(bad, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, version, 104),
      Z_VERSION_ERROR,
    );
  });

  await t.step("deflate moves next/avail/total, fills state, zalloc, zfree and adler", () => {
    const strm = new Uint8Array(new ArrayBuffer(Z_STREAM.size));
    const view = new DataView(strm.buffer);
    // windowBits +15: the zlib wrapper, so that zlib maintains the Adler-32 of the input.
    assert.equal(
      sym.deflateInit2_(strm, 6, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY, version, Z_STREAM.size),
      Z_OK,
    );
    try {
      assert.notEqual(readU64(view, Z_STREAM.state), 0);
      // Z_NULL allocators are replaced by zlib's defaults; opaque stays NULL.
      assert.notEqual(readU64(view, Z_STREAM.zalloc), 0);
      assert.notEqual(readU64(view, Z_STREAM.zfree), 0);
      assert.equal(readU64(view, Z_STREAM.opaque), 0);
      const input = new Uint8Array(new ArrayBuffer(300));
      for (let i = 0; i < input.length; i++) input[i] = i % 7;
      const output = new Uint8Array(new ArrayBuffer(1024));
      writeU64(view, Z_STREAM.nextIn, address(input));
      view.setUint32(Z_STREAM.availIn, input.length, true);
      writeU64(view, Z_STREAM.nextOut, address(output));
      view.setUint32(Z_STREAM.availOut, output.length, true);
      assert.equal(sym.deflate(strm, Z_SYNC_FLUSH), Z_OK);
      const produced = output.length - view.getUint32(Z_STREAM.availOut, true);
      assert.ok(produced > 0);
      assert.equal(view.getUint32(Z_STREAM.availIn, true), 0);
      assert.equal(readU64(view, Z_STREAM.nextIn), address(input) + input.length);
      assert.equal(readU64(view, Z_STREAM.totalIn), input.length);
      assert.equal(readU64(view, Z_STREAM.nextOut), address(output) + produced);
      assert.equal(readU64(view, Z_STREAM.totalOut), produced);
      assert.equal(readU64(view, Z_STREAM.adler), adler32(input));
      assert.equal(readU64(view, Z_STREAM.msg), 0);
      // A second flush with nothing new makes no progress.
      assert.equal(sym.deflate(strm, Z_SYNC_FLUSH), Z_BUF_ERROR);
    } finally {
      // Z_DATA_ERROR: "freed prematurely" (mid-stream, as every permessage-deflate stream
      // ends); the memory is released all the same.
      assert.equal(sym.deflateEnd(strm), Z_DATA_ERROR);
    }
  });

  await t.step("inflate sets msg on bad data and data_type at a block boundary", () => {
    const strm = new Uint8Array(new ArrayBuffer(Z_STREAM.size));
    const view = new DataView(strm.buffer);
    assert.equal(sym.inflateInit2_(strm, -15, version, Z_STREAM.size), Z_OK);
    try {
      const output = new Uint8Array(new ArrayBuffer(64));
      // RFC 7692 §7.2.3.1 "Hello" plus the tail: ends exactly after an empty stored block.
      const good = new Uint8Array(new ArrayBuffer(11));
      good.set([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff]);
      writeU64(view, Z_STREAM.nextIn, address(good));
      view.setUint32(Z_STREAM.availIn, good.length, true);
      writeU64(view, Z_STREAM.nextOut, address(output));
      view.setUint32(Z_STREAM.availOut, output.length, true);
      assert.equal(sym.inflate(strm, Z_SYNC_FLUSH), Z_OK);
      assert.equal(readU64(view, Z_STREAM.totalOut), 5);
      assert.equal(new TextDecoder().decode(output.subarray(0, 5)), "Hello");
      assert.equal(view.getInt32(Z_STREAM.dataType, true) & 128, 128);
      // BTYPE 11 is reserved: "invalid block type".
      const bad = new Uint8Array(new ArrayBuffer(1));
      bad[0] = 0x07;
      writeU64(view, Z_STREAM.nextIn, address(bad));
      view.setUint32(Z_STREAM.availIn, 1, true);
      assert.equal(sym.inflate(strm, Z_SYNC_FLUSH), Z_DATA_ERROR);
      const msg = Deno.UnsafePointer.create(view.getBigUint64(Z_STREAM.msg, true));
      assert.ok(msg !== null);
      assert.equal(Deno.UnsafePointerView.getCString(msg), "invalid block type");
    } finally {
      assert.equal(sym.inflateEnd(strm), Z_OK);
    }
  });
});

Deno.test("zlib library paths and errors", async (t) => {
  await t.step("candidates per system", () => {
    assert.deepEqual(zlibCandidates("linux"), ["libz.so.1"]);
    assert.deepEqual(zlibCandidates("freebsd"), ["libz.so.6"]);
    const darwin = zlibCandidates("darwin");
    assert.equal(darwin[0], "libz.1.dylib");
    assert.ok(darwin.includes("/usr/lib/libz.1.dylib"));
    assert.deepEqual(zlibCandidates("windows"), []);
  });

  await t.step("ZlibUnavailableError is an FdwsError with its code and causes", () => {
    const cause = new Error("not found");
    const err = new ZlibUnavailableError("no zlib", [cause]);
    assert.ok(err instanceof FdwsError);
    assert.equal(err.code, "ZLIB_UNAVAILABLE");
    assert.ok(err.cause instanceof AggregateError);
    assert.deepEqual((err.cause as AggregateError).errors, [cause]);
  });
});
